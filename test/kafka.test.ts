import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { consumeKafka } from '../lib/kafka/index.js';
import { parseKey } from '../lib/key.js';
import { kafkaKit, type WorkerChild as Child } from './helpers/kafka-kit.js';
import { startCli } from './helpers/cli.js';
import { startProxy } from './helpers/proxy.js';
import { eventually } from './helpers/wait.js';

const { env, serial, s3Options, lagIsZero, assertExactlyOnce, startWorker } = kafkaKit(test);
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 2, 3, 0, 0);

/** Produces records `{ n, p, service }` for n in [from, to), to partition n % partitions, with the timestamp `time(n)`. */
async function produce(topic: string, partitions: number, from: number, to: number, time: (n: number) => number = () => Date.now()): Promise<void> {
  for (let start = from; start < to; start += 2000) {
    const messages = [];
    for (let n = start; n < Math.min(to, start + 2000); n++) {
      const p = n % partitions;
      messages.push({ partition: p, timestamp: String(time(n)), value: JSON.stringify({ n, p, service: (n >> 1) % 2 ? 'api' : 'db' }) });
    }
    await env.producer.send({ topic, messages, acks: -1 });
  }
}

serial('one worker: every record once, one object per destination, partition and window, keys in the records\' own windows; close() commits every offset', async (t) => {
  await env.kafka.createTopic('one', 3);
  // A backlog over three minutes of record time (n / 1000 is the minute).
  await produce('one', 3, 0, 3000, (n) => T0 + Math.floor(n / 1000) * MINUTE + (n % 1000) * 10);
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: ['one'], groupId: 'g-one', idleMs: 200, sink: { bucket: 'bucket', prefix: 'one/{service}/', s3: s3Options(), gzipLevel: 1 } });
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => worker.stats().eventsOut === 3000, 'all 3000 records in S3', 60_000);
  await worker.close();
  const keys = await assertExactlyOnce(t, 'one/', 3000);
  // 2 services × 3 partitions × 3 minutes: the last minute's batches were cut when the partitions went idle.
  t.is(keys.length, 18);
  for (const key of keys) {
    const parsed = parseKey(key);
    const lines = await env.s3.lines('bucket', key);
    const minute = Math.floor((JSON.parse(lines[0] as string) as { n: number }).n / 1000);
    t.is(Math.floor(((parsed?.time ?? 0) - T0) / MINUTE), minute, `${key} is filed under its records' minute`);
  }
  t.true(await lagIsZero('g-one', 'one'));
  const stats = worker.stats();
  t.is(stats.records, 3000);
  // Per partition: two batches closed by the log (a later minute), the last one cut when the partition went idle.
  t.is(stats.batches, 6);
  t.is(stats.cuts, 3);
});

serial('a worker killed between a completed object and its offset commit: the restart rewrites the same key with the same bytes', async (t) => {
  await env.kafka.createTopic('crash', 1);
  // 100 records in one minute, then one in the next: the first batch closes by the log's own rule.
  await produce('crash', 1, 0, 101, (n) => (n < 100 ? T0 + n : T0 + MINUTE));
  const first = startWorker({ topic: 'crash', groupId: 'g-crash', prefix: 'crash', crashAfterDelivered: true });
  await first.exited;
  t.is(first.process.signalCode, 'SIGKILL');
  t.is(first.objects.length, 1);
  const key = first.objects[0] as string;
  const bytes = await env.s3.raw('bucket', key);
  const committed = await env.admin.fetchOffsets({ groupId: 'g-crash', topics: ['crash'] });
  t.true(Number(committed[0]?.partitions[0]?.offset) <= 0, 'nothing past the first batch was committed before the kill');

  const second = startWorker({ topic: 'crash', groupId: 'g-crash', prefix: 'crash' });
  await eventually(() => second.objects.includes(key), 'the same key written again', 30_000);
  t.deepEqual(await env.s3.raw('bucket', key), bytes, 'the same bytes');
  await eventually(() => lagIsZero('g-crash', 'crash'), 'every offset committed', 30_000);
  second.process.kill('SIGTERM');
  t.is(await second.exited, 0);
  const keys = await assertExactlyOnce(t, 'crash/', 101);
  t.is(keys.length, 2);
});

serial('three workers over six partitions, one killed with SIGKILL and restarted, a fourth added: every record in S3 exactly once, in offset order', async (t) => {
  const total = 200_000;
  await env.kafka.createTopic('group', 6);
  const settings = { topic: 'group', groupId: 'g-group', prefix: 'group' };
  const workers = [startWorker(settings), startWorker(settings), startWorker(settings)];
  t.teardown(() => workers.forEach((w) => w.process.kill('SIGKILL')));
  const third = Math.floor(total / 3);
  await produce('group', 6, 0, third);
  await eventually(() => workers.every((w) => w.objects.length > 0), 'each worker wrote an object', 60_000);
  (workers[0] as Child).process.kill('SIGKILL');
  await produce('group', 6, third, 2 * third);
  workers.push(startWorker(settings)); // the killed one, restarted
  await produce('group', 6, 2 * third, total - 10_000);
  workers.push(startWorker(settings)); // a fourth: a rebalance
  await produce('group', 6, total - 10_000, total);
  await eventually(() => lagIsZero('g-group', 'group'), 'the group caught up (lag 0)', 120_000);
  await Promise.all(workers.slice(1).map((w) => w.ready));
  for (const w of workers.slice(1)) w.process.kill('SIGTERM');
  const codes = await Promise.all(workers.slice(1).map((w) => w.exited));
  t.deepEqual(codes, [0, 0, 0, 0]);
  await assertExactlyOnce(t, 'group/', total);
});

serial('the broker restarted mid-run: the worker reconnects, nothing lost or written twice', async (t) => {
  await env.kafka.createTopic('restart', 2);
  const worker = startWorker({ topic: 'restart', groupId: 'g-restart', prefix: 'restart' });
  t.teardown(() => worker.process.kill('SIGKILL'));
  await produce('restart', 2, 0, 5000);
  await eventually(() => worker.objects.length > 0, 'an object', 60_000);
  await env.kafka.restart();
  await env.producer.disconnect();
  await env.producer.connect();
  await produce('restart', 2, 5000, 10_000);
  await eventually(() => lagIsZero('g-restart', 'restart'), 'the group caught up', 120_000);
  worker.process.kill('SIGTERM');
  t.is(await worker.exited, 0);
  await assertExactlyOnce(t, 'restart/', 10_000);
});

serial('with a spool: offsets are committed once batches are durable, through an S3 outage; SIGKILL then, and a restart on the same spool delivers them from disk and reads the rest again: each record once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3sink-kafka-spool-'));
  const proxy = await startProxy(env.s3.port);
  t.teardown(() => proxy.close());
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await env.kafka.createTopic('spooled', 3);
  const settings = { topic: 'spooled', groupId: 'g-spooled', prefix: 'spooled', spoolDir: dir, endpoint: proxy.endpoint };
  const first = startWorker(settings);
  t.teardown(() => first.process.kill('SIGKILL'));
  const start = Date.now();
  await produce('spooled', 3, 0, 10_000, () => start - 10 * MINUTE);
  await eventually(() => first.objects.length > 0, 'an object', 60_000);
  await proxy.down();
  // Five minutes later in record time: the batches close by the log's own rule (and the last ones when idle), and are spooled.
  await produce('spooled', 3, 10_000, 20_000, () => start - 5 * MINUTE);
  await eventually(() => lagIsZero('g-spooled', 'spooled'), 'every offset committed while S3 is down (the batches are durable in the spool)', 60_000);
  first.process.kill('SIGKILL');
  await first.exited;
  await proxy.up();
  await produce('spooled', 3, 20_000, 30_000);
  const second = startWorker(settings);
  t.teardown(() => second.process.kill('SIGKILL'));
  await eventually(() => second.recovered !== null, "the restart's recovery", 60_000);
  t.true((second.recovered as { batches: number }).batches >= 3, `recovered ${JSON.stringify(second.recovered)}`);
  await eventually(() => lagIsZero('g-spooled', 'spooled'), 'the group caught up', 120_000);
  second.process.kill('SIGTERM');
  t.is(await second.exited, 0);
  await assertExactlyOnce(t, 'spooled/', 30_000);
});

serial('the CLI: s3-sink kafka delivers a topic under a templated prefix, and SIGTERM commits, leaves the group and exits 0', async (t) => {
  await env.kafka.createTopic('cli', 2);
  await produce('cli', 2, 0, 4000, (n) => T0 + (n < 2000 ? 0 : MINUTE));
  const cli = startCli(['kafka', '--brokers', env.kafka.bootstrap, '--topic', 'cli', '--group', 'g-cli', '--bucket', 'bucket', '--prefix', 'cli/{service}/', '--endpoint', env.s3.endpoint, '--idle', '300ms']);
  t.teardown(() => cli.child.kill('SIGKILL'));
  await eventually(() => lagIsZero('g-cli', 'cli'), 'every offset committed', 60_000);
  cli.child.kill('SIGTERM');
  const { code } = await cli.exit;
  t.is(code, 0, cli.stderr());
  t.regex(cli.stderr(), /SIGTERM: stopped reading; delivering and committing what was read/);
  const keys = await assertExactlyOnce(t, 'cli/', 4000);
  // 2 services × 2 partitions × 2 minutes.
  t.is(keys.length, 8);
  t.true(keys.every((key) => key.startsWith('cli/api/') || key.startsWith('cli/db/')));
});

serial('poison records (not JSON for the template, too long, a tombstone) never block a partition: the rest delivered, each reported, every offset committed', async (t) => {
  await env.kafka.createTopic('poison', 1);
  const good = (n: number) => ({ timestamp: String(T0), value: JSON.stringify({ n, p: 0, service: 'api' }) });
  await env.producer.send({
    topic: 'poison',
    acks: -1,
    messages: [good(0), { timestamp: String(T0), value: 'not json' }, good(1), { timestamp: String(T0), value: JSON.stringify({ n: -1, pad: 'x'.repeat(2000) }) }, good(2), { timestamp: String(T0), value: null }, good(3)],
  });
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: ['poison'], groupId: 'g-poison', idleMs: 100, sink: { bucket: 'bucket', prefix: 'poison/{service}/', deadLetterPrefix: 'poison-unrouted/', maxLineBytes: 1000, s3: s3Options() } });
  const rejected: string[] = [];
  worker.sink.on('rejected', (r) => rejected.push(r.code));
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => lagIsZero('g-poison', 'poison'), 'every offset committed', 30_000);
  await worker.close();
  t.deepEqual(rejected.sort(), ['ERR_S3SINK_LINE_TOO_LONG', 'ERR_S3SINK_RECORD']);
  await assertExactlyOnce(t, 'poison/', 4);
  const unrouted = await env.s3.keys('bucket', 'poison-unrouted/');
  t.is(unrouted.length, 1);
  t.deepEqual(await env.s3.lines('bucket', unrouted[0] as string), ['not json']);
  t.is(worker.stats().unrouted, 1);
});

serial('record metadata in the prefix: {kafka:topic}, {kafka:partition}, {kafka:header.NAME} and {kafka:key}; a record without the header goes to deadLetterPrefix', async (t) => {
  await env.kafka.createTopic('meta', 2);
  const messages = [];
  for (let n = 0; n < 40; n++) {
    messages.push({ partition: n % 2, key: `k${n % 3}`, timestamp: String(T0), value: JSON.stringify({ n, p: n % 2 }), headers: n % 4 === 0 ? { other: 'x' } : { tenant: n % 8 === 1 ? Buffer.from('acme') : 'globex' } });
  }
  await env.producer.send({ topic: 'meta', acks: -1, messages });
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: ['meta'], groupId: 'g-meta', idleMs: 100, sink: { bucket: 'bucket', prefix: 'meta/{kafka:topic}/{kafka:partition}/{kafka:header.tenant}/{kafka:key}/', deadLetterPrefix: 'meta-unrouted/', s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => lagIsZero('g-meta', 'meta'), 'every offset committed', 30_000);
  await worker.close();
  const routed = new Map<number, string>();
  for (const key of await env.s3.keys('bucket', 'meta/')) {
    for (const line of await env.s3.lines('bucket', key)) routed.set((JSON.parse(line) as { n: number }).n, key.split('/').slice(1, 5).join('/'));
  }
  const unrouted = [];
  for (const key of await env.s3.keys('bucket', 'meta-unrouted/')) for (const line of await env.s3.lines('bucket', key)) unrouted.push((JSON.parse(line) as { n: number }).n);
  const expected = new Map<number, string>();
  for (let n = 0; n < 40; n++) if (n % 4 !== 0) expected.set(n, `meta/${n % 2}/${n % 8 === 1 ? 'acme' : 'globex'}/k${n % 3}`);
  t.deepEqual(new Map([...routed].sort(([a], [b]) => a - b)), expected);
  t.deepEqual(unrouted.sort((a, b) => a - b), [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
  t.is(worker.stats().unrouted, 10);
});

serial('backpressure: S3 slower than the topic pauses consumption and memory stays within the budget (full budgets cut batches, recorded), each record once', async (t) => {
  await env.kafka.createTopic('slow', 6);
  // 2.7 MB in one minute over 6 partitions: their open batches fill the 1 MiB budget before any closes by size.
  await produce('slow', 6, 0, 80_000, () => T0);
  const proxy = await startProxy(env.s3.port, { bytesPerSecond: 2 * 1024 * 1024 });
  t.teardown(() => proxy.close());
  const budget = 1024 * 1024;
  // No idle cut during the test (a partition waiting for the budget is not idle anyway): every cut while reading is for room.
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: ['slow'], groupId: 'g-slow', idleMs: 60_000, sink: { bucket: 'bucket', prefix: 'slow', maxBufferedBytes: budget, gzipLevel: 0, s3: { ...s3Options(), endpoint: proxy.endpoint } } });
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => worker.stats().records === 80_000, 'every record read', 90_000);
  const cutForRoom = worker.stats().cuts;
  await worker.close();
  t.true(await lagIsZero('g-slow', 'slow'));
  const stats = worker.stats();
  t.true(stats.peakBufferedBytes <= budget + 1024, `peak ${stats.peakBufferedBytes} within the budget of ${budget}`);
  t.true(cutForRoom > 0, `batches were cut for room (${cutForRoom} cuts)`);
  await assertExactlyOnce(t, 'slow/', 80_000);
});
