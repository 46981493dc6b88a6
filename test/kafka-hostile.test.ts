import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import test from 'ava';
import { AssignerProtocol, Kafka, type Consumer } from 'kafkajs';
import { consumeKafka } from '../lib/kafka/index.js';
import { parseKey } from '../lib/key.js';
import { startCli } from './helpers/cli.js';
import { kafkaKit, type WorkerChild as Child } from './helpers/kafka-kit.js';
import { startProxy, type Fault, type Proxy } from './helpers/proxy.js';
import { eventually } from './helpers/wait.js';

// Hostile tests of the Kafka workers: real broker, real s3rver, the fault
// proxy. Each asserts the first rule: every record in S3 exactly once.

const { env, serial, s3Options, lagIsZero, census, assertExactlyOnce, startWorker } = kafkaKit(test);

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 2, 3, 0, 0);

/**
 * Produces records `{ n, p, pad }` for n in [from, to), to partition n % partitions,
 * with the timestamp `time(n)` and `padBytes` of incompressible padding.
 */
async function produce(topic: string, partitions: number, from: number, to: number, time: (n: number) => number = () => Date.now(), padBytes = 0): Promise<void> {
  for (let start = from; start < to; start += 1000) {
    const byPartition = new Map<number, { timestamp: string; value: string }[]>();
    for (let n = start; n < Math.min(to, start + 1000); n++) {
      const p = n % partitions;
      const value = JSON.stringify({ n, p, pad: padBytes > 0 ? randomBytes(Math.ceil((padBytes * 3) / 4)).toString('base64').slice(0, padBytes) : undefined });
      byPartition.set(p, [...(byPartition.get(p) ?? []), { timestamp: String(time(n)), value }]);
    }
    await env.producer.sendBatch({ acks: -1, topicMessages: [...byPartition].map(([partition, messages]) => ({ topic, messages: messages.map((m) => ({ ...m, partition })) })) });
  }
}

/** A proxy in front of s3rver whose writes answer 503 SlowDown while `blocked` (a brownout that the retries ride out). */
async function blockableS3(bytesPerSecond?: number): Promise<{ proxy: Proxy; block(on: boolean): void }> {
  let blocked = false;
  const proxy = await startProxy(env.s3.port, { ...(bytesPerSecond ? { bytesPerSecond } : {}), fault: (operation) => (blocked && operation !== 'Other' ? { kind: 'status', status: 503, code: 'SlowDown' } : { kind: 'pass' }) });
  return { proxy, block: (on) => (blocked = on) };
}

/** An in-process worker of the hand-over tests: uncompressed objects, a short session, S3 behind `endpoint`, retries that ride out a long brownout. */
function handOverOptions(o: { topic: string; groupId: string; clientId: string; budget: number; endpoint: string; maxBatchBytes: number; retry: { attempts: number; baseMs: number; capMs: number } }) {
  return {
    brokers: env.kafka.brokers,
    topics: [o.topic],
    groupId: o.groupId,
    clientId: o.clientId,
    idleMs: 300,
    sessionTimeoutMs: 6000,
    maxBatchBytes: o.maxBatchBytes,
    // The budgets here count line bytes to the KiB: no set-aside for the pieces' compressors (their batches never stream anyway).
    sink: { bucket: 'bucket', prefix: o.topic, gzipLevel: 0, parallelGzip: false, maxBufferedBytes: o.budget, retry: o.retry, s3: s3Options(o.endpoint) },
  };
}

/**
 * A topic of one partition holding 6000 records of ~1 KiB in one minute that
 * ended long ago (4 batches of `maxBatchBytes` 1.5 MiB: 3 by size, the rest
 * cut when the partition goes quiet), and an S3 that answers 503 until unblocked.
 */
async function sixThousandBehindABlockedS3(t: { teardown(fn: () => unknown): void }, topic: string): Promise<{ proxy: Proxy; block(on: boolean): void }> {
  await env.kafka.createTopic(topic, 1);
  const s3 = await blockableS3();
  t.teardown(() => s3.proxy.close());
  await produce(topic, 1, 0, 6000, () => T0, 1000);
  s3.block(true);
  return s3;
}

/** A plain consumer of the group that joins (a rebalance), reads nothing it commits, and leaves (another one). */
async function rebalanceOnce(groupId: string, topic: string): Promise<void> {
  const consumer: Consumer = env.client.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} });
  await joined;
  await consumer.disconnect();
}

serial('a partition read again after a rebalance while all its batches are on their way (S3 answers 503), then waiting for the budget: every record once, within the budget', async (t) => {
  const topic = 'reread';
  await env.kafka.createTopic(topic, 1);
  const { proxy, block } = await blockableS3();
  t.teardown(() => proxy.close());
  // 900 records of ~1 KiB in one minute that ended long ago: batches of 128 KiB by size, 0.9 MiB in all (the budget: 1 MiB).
  await produce(topic, 1, 0, 900, () => T0, 1000);
  block(true);
  const worker = consumeKafka({
    brokers: env.kafka.brokers,
    topics: [topic],
    groupId: 'g-reread',
    idleMs: 300,
    sessionTimeoutMs: 6000,
    maxBatchBytes: 128 * 1024,
    // 0.9 MiB of lines must fit the 1 MiB budget: no set-aside for the pieces' compressors (its 128 KiB batches never stream anyway).
    sink: { bucket: 'bucket', prefix: topic, gzipLevel: 0, parallelGzip: false, maxBufferedBytes: 1024 * 1024, retry: { attempts: 100, baseMs: 100, capMs: 1000 }, s3: s3Options(proxy.endpoint) },
  });
  t.teardown(() => worker.close().catch(() => {}));
  // Every record read and in the chain (the last batch cut when idle), none delivered: S3 answers 503.
  await eventually(() => worker.stats().records === 900 && worker.stats().cuts === 1, 'all 900 read, the last batch cut', 30_000);
  // A rebalance: the partition starts again at offset 0 while all its batches are still on their way.
  await rebalanceOnce('g-reread', topic);
  // More records: the budget fills while they are read, and the partition waits for room for longer than idleMs.
  await produce(topic, 1, 900, 1200, () => T0, 1000);
  await eventually(() => worker.stats().bufferedBytes > 1000 * 1024, 'the budget full again', 30_000);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  block(false);
  await eventually(() => lagIsZero('g-reread', topic), 'every offset committed', 60_000);
  await worker.close();
  t.true(worker.stats().peakBufferedBytes <= 1024 * 1024);
  await assertExactlyOnce(t, `${topic}/`, 1200);
});

serial('a record stamped 50 minutes ahead (Kafka 4 takes up to an hour), then records of now: the partition does not stall behind it, every record once', async (t) => {
  const topic = 'future';
  await env.kafka.createTopic(topic, 1);
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-future', idleMs: 300, sink: { bucket: 'bucket', prefix: topic, windowMs: 1000, s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  const ahead = Date.now() + 50 * MINUTE; // a producer whose clock is 50 minutes ahead
  await produce(topic, 1, 0, 10, () => T0);
  await produce(topic, 1, 10, 11, () => ahead);
  // The batch ahead opens when the worker reads its record (after it has joined the group): the clock starts then.
  await eventually(() => worker.stats().records === 11, 'the worker read the record ahead', 30_000);
  // Then records of now, one every 100 ms for 4 s: each is late for the window of the one ahead.
  const start = Date.now();
  const producedAt: number[] = [];
  let n = 11;
  for (; Date.now() - start < 4000; n++) {
    await produce(topic, 1, n, n + 1);
    producedAt[n] = Date.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await eventually(() => lagIsZero('g-future', topic), 'every offset committed', 15_000);
  await worker.close();
  const keys = await assertExactlyOnce(t, `${topic}/`, n);
  // The batch ahead was cut while records kept coming (a window and idleMs after it opened): later records went to objects of their own windows.
  const aheadKeys = keys.filter((key) => (parseKey(key)?.time ?? 0) >= ahead - 1000);
  t.is(aheadKeys.length, 1, keys.join('\n'));
  const inAhead = (await env.s3.lines('bucket', aheadKeys[0] as string)).map((line) => (JSON.parse(line) as { n: number }).n);
  t.deepEqual(inAhead.filter((m) => (producedAt[m] ?? 0) > 3000), [], `records produced 3 s after the one ahead are not in its batch (${inAhead.length} are)`);
});


serial('a worker stopped (SIGSTOP) past its session while another takes its partitions, then continued: every record once', async (t) => {
  const topic = 'zombie';
  await env.kafka.createTopic(topic, 4);
  const settings = { topic, groupId: 'g-zombie', prefix: topic };
  const a = startWorker(settings);
  t.teardown(() => a.process.kill('SIGKILL'));
  await produce(topic, 4, 0, 4000);
  await eventually(() => a.objects.length > 0, 'a wrote an object', 30_000);
  const b = startWorker(settings);
  t.teardown(() => b.process.kill('SIGKILL'));
  // Records until B (which joined: a rebalance) has written some of its share.
  let n = 4000;
  for (; b.objects.length === 0; n += 200) {
    if (n > 40_000) t.fail('b wrote nothing');
    await produce(topic, 4, n, n + 200);
    await eventually(() => lagIsZero('g-zombie', topic), 'the records read', 30_000);
  }
  // A stops with its batches open and some on their way; its session (6 s) runs out and B gets every partition.
  await produce(topic, 4, n, n + 1000);
  a.process.kill('SIGSTOP');
  const before = b.objects.length;
  await produce(topic, 4, n + 1000, n + 4000);
  await eventually(() => lagIsZero('g-zombie', topic), 'b caught up alone', 60_000);
  t.true(b.objects.length > before);
  // A comes back: its timers fire, its uploads finish, its commits are refused (a generation gone); it joins again.
  a.process.kill('SIGCONT');
  await produce(topic, 4, n + 4000, n + 8000);
  await eventually(() => lagIsZero('g-zombie', topic), 'the group caught up', 60_000);
  a.process.kill('SIGTERM');
  b.process.kill('SIGTERM');
  t.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0], [...a.stderr, ...b.stderr].join('\n'));
  await assertExactlyOnce(t, `${topic}/`, n + 8000);
});

serial('a partition taken over while the old owner still has its batches on their way (its S3 answers 503): the new owner, waiting for its budget longer than idleMs (not idle) and then closed while behind (no cut mid-way), makes the same batches; every record once', async (t) => {
  const topic = 'handover';
  await env.kafka.createTopic(topic, 1);
  const s3a = await blockableS3();
  const s3b = await blockableS3();
  t.teardown(() => s3a.proxy.close());
  t.teardown(() => s3b.proxy.close());
  // 1500 records of ~1 KiB in one minute that ended long ago: batches of 128 KiB by size.
  await produce(topic, 1, 0, 1500, () => T0, 1000);
  s3a.block(true);
  s3b.block(true);
  const options = (clientId: string, budget: number, endpoint: string) => handOverOptions({ topic, groupId: 'g-handover', clientId, budget, endpoint, maxBatchBytes: 128 * 1024, retry: { attempts: 100, baseMs: 100, capMs: 500 } });
  // A (a budget of 2 MiB) reads everything: its batches wait for S3.
  const a = consumeKafka(options('s3-sink-a', 2 * 1024 * 1024, s3a.proxy.endpoint));
  t.teardown(() => a.close().catch(() => {}));
  await eventually(() => a.stats().records === 1500 && a.stats().cuts === 1, 'a read all', 30_000);
  // B joins and gets the partition (member ids sort by client id). With 1 MiB, its reading stops mid-way to wait for room.
  const b = consumeKafka(options('aaa-b', 1024 * 1024, s3b.proxy.endpoint));
  t.teardown(() => b.close().catch(() => {}));
  await eventually(() => b.stats().bufferedBytes > 900 * 1024, 'b waits for room in its budget', 30_000);
  // Waiting longer than idleMs (what an idle cut takes): the partition has records, it is not idle.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.is(b.stats().cuts, 0);
  // Then B is stopped while it is behind (a rolling restart): it delivers its closed batches, and leaves the open one.
  const closing = b.close();
  s3b.block(false);
  await closing;
  t.is(b.stats().cuts, 0);
  // A gets the partition back and catches up. Its uploads, on their way all along, were read before two rebalances:
  // they are fenced, and their records read again.
  s3a.block(false);
  await eventually(() => lagIsZero('g-handover', topic), 'the group caught up', 60_000);
  await a.close();
  await assertExactlyOnce(t, `${topic}/`, 1500);
});

serial('a partition taken over while the old owner retries its uploads (S3 answers 503), the new owner cutting its batches shorter for room in a smaller budget: the old owner\'s objects are fenced (not written), so no record is in two objects', async (t) => {
  const topic = 'fence';
  const s3a = await sixThousandBehindABlockedS3(t, topic);
  const options = (clientId: string, budget: number, endpoint: string) => handOverOptions({ topic, groupId: 'g-fence', clientId, budget, endpoint, maxBatchBytes: 1536 * 1024, retry: { attempts: 100, baseMs: 200, capMs: 2000 } });
  // A (a budget of 16 MiB) reads everything: its batches (1.5 MiB each by the log's rule) wait for S3.
  const a = consumeKafka(options('s3-sink-a', 16 * 1024 * 1024, s3a.proxy.endpoint));
  t.teardown(() => a.close().catch(() => {}));
  await eventually(() => a.stats().records === 6000 && a.stats().cuts === 1, 'a read all (its last batch cut when the partition went quiet)', 30_000);
  const aBatches = a.stats().batches + a.stats().cuts;
  // B joins and gets the partition (member ids sort by client id). Its budget (1 MiB) is smaller than a batch:
  // it cuts each batch for room (recorded cuts), so its first object has the key of A's first, with fewer records.
  const b = consumeKafka(options('aaa-b', 1024 * 1024, env.s3.endpoint));
  t.teardown(() => b.close().catch(() => {}));
  await eventually(() => lagIsZero('g-fence', topic), 'b wrote and committed everything', 60_000);
  t.true(b.stats().cuts > 1, 'b cut its batches for room');
  // A's S3 comes back: its uploads, on their way all along, are not written (the partition is not its own any more).
  s3a.block(false);
  await eventually(() => a.stats().objects + a.stats().fenced === aBatches, `a's ${aBatches} batches written or fenced`, 30_000);
  await Promise.all([a.close(), b.close()]);
  await assertExactlyOnce(t, `${topic}/`, 6000);
  t.is(a.stats().fenced, aBatches);
});

serial('with a spool: a partition taken over while the old owner\'s S3 answers 503: its batches were sealed and their offsets committed, so they are its to write (not fenced: the new owner starts after them), delivered from its spool when S3 is back; every record once', async (t) => {
  const topic = 'fence-spool';
  const s3a = await sixThousandBehindABlockedS3(t, topic);
  const dir = await mkdtemp(join(tmpdir(), 's3sink-kafka-fence-spool-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const options = (clientId: string, budget: number, endpoint: string) => handOverOptions({ topic, groupId: 'g-fence-spool', clientId, budget, endpoint, maxBatchBytes: 1536 * 1024, retry: { attempts: 3, baseMs: 100, capMs: 200 } });
  const a = consumeKafka({ ...options('s3-sink-a', 16 * 1024 * 1024, s3a.proxy.endpoint), sink: { ...options('s3-sink-a', 16 * 1024 * 1024, s3a.proxy.endpoint).sink, spool: { dir, fsyncIntervalMs: 20 } } });
  t.teardown(() => a.close().catch(() => {}));
  a.sink.on('warning', () => {}); // S3SINK_REDELIVER while S3 answers 503
  await eventually(() => lagIsZero('g-fence-spool', topic), 'a sealed every batch and committed past it', 30_000);
  const b = consumeKafka(options('aaa-b', 1024 * 1024, env.s3.endpoint));
  t.teardown(() => b.close().catch(() => {}));
  const members = async () => {
    const { groups } = await env.admin.describeGroups(['g-fence-spool']);
    return groups[0]?.state === 'Stable' ? groups[0].members.length : 0;
  };
  await eventually(async () => (await members()) === 2, 'b joined the group (a rebalance: a holds no partition it had when it read)', 30_000);
  s3a.block(false);
  await eventually(() => a.stats().objects === 4, "a delivered its 4 batches from its spool", 60_000);
  await Promise.all([a.close(), b.close()]);
  t.is(a.stats().fenced, 0);
  t.is(b.stats().records, 0, 'b read nothing: every offset was committed');
  await assertExactlyOnce(t, `${topic}/`, 6000);
});

serial('a worker stopped (SIGSTOP) past its session with its uploads waiting for S3 (503), while another takes its partition and cuts its batches shorter; continued with S3 back: its lease has run out, so its objects wait for a heartbeat, which tells it it left: fenced, every record once', async (t) => {
  const topic = 'zombie-fence';
  await env.kafka.createTopic(topic, 1);
  await produce(topic, 1, 0, 6000, () => T0, 1000);
  // S3 holds A's writes (its batches are one PutObject each) unanswered, then (A stopped) answers them 503, and passes everything after.
  let answer = (_fault: Fault) => {};
  const answered = new Promise<Fault>((resolve) => (answer = resolve));
  let stopped = false;
  const proxy = await startProxy(env.s3.port, { fault: (operation) => (operation === 'PutObject' && !stopped ? { kind: 'later', fault: answered } : { kind: 'pass' }) });
  t.teardown(() => proxy.close());
  const a = startWorker({ topic, groupId: 'g-zombie-fence', prefix: topic, clientId: 's3-sink-a', endpoint: proxy.endpoint, maxBufferedBytes: 16 * 1024 * 1024, maxBatchBytes: 1536 * 1024, retry: { attempts: 100, baseMs: 200, capMs: 2000 } });
  t.teardown(() => a.process.kill('SIGKILL'));
  const heldKeys = () => new Set(proxy.log.filter((l) => l.operation === 'PutObject').map((l) => l.url.split('?')[0])).size;
  await eventually(() => heldKeys() === 4, 'a tries to write its 4 batches', 30_000);
  // Each of A's batches has its one request at S3 (none between its fence and S3: that window has a test of its own in
  // test/multipart): it is stopped, and its requests are answered 503.
  a.process.kill('SIGSTOP');
  stopped = true;
  answer({ kind: 'status', status: 503, code: 'SlowDown' });
  // B (a budget of 1 MiB, smaller than a batch) gets the partition once A's session has run out, and cuts every batch for room.
  const b = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-zombie-fence', clientId: 'aaa-b', idleMs: 300, sessionTimeoutMs: 6000, maxBatchBytes: 1536 * 1024, sink: { bucket: 'bucket', prefix: topic, windowMs: 2000, gzipLevel: 1, maxBufferedBytes: 1024 * 1024, s3: s3Options() } });
  t.teardown(() => b.close().catch(() => {}));
  await eventually(() => lagIsZero('g-zombie-fence', topic), 'b wrote and committed everything', 60_000);
  t.true(b.stats().cuts > 1, 'b cut its batches for room');
  // A goes on with S3 back: its retries come due at once, before it has heard from the group.
  a.process.kill('SIGCONT');
  // Then it is stopped: close() waits for each of its objects to be written or fenced.
  a.process.kill('SIGTERM');
  t.is(await a.exited, 0, a.stderr.join('\n'));
  await b.close();
  t.deepEqual(a.objects, [], 'a wrote nothing');
  t.is((a.closed as { fenced: number } | null)?.fenced, 4);
  await assertExactlyOnce(t, `${topic}/`, 6000);
});

serial("a worker slow to read a backlog (its process stalled for longer than idleMs between two fetches) is behind its log, not quiet: its batch is cut only once it has read to the log's end; every record once", async (t) => {
  const topic = 'behind';
  await env.kafka.createTopic(topic, 1);
  // 6000 records of ~1 KiB in one minute that ended long ago: about six fetches of 1 MiB.
  await produce(topic, 1, 0, 6000, () => T0, 1000);
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-behind', idleMs: 300, sink: { bucket: 'bucket', prefix: topic, s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  // Checked after every turn of the event loop: the first fetch has been taken, the next one is not in yet.
  await eventually(() => worker.stats().records > 0, 'the first fetch read', 30_000);
  t.true(worker.stats().records < 6000, `${worker.stats().records} records read: the log goes on`);
  // The whole process stalls for longer than idleMs (a long pause, a starved container): the idle timer is due
  // before the next fetch's records are taken, the last record came over idleMs ago, and its window ended long ago.
  const until = Date.now() + 1000;
  while (Date.now() < until);
  await eventually(() => lagIsZero('g-behind', topic), 'all read and committed', 30_000);
  t.is(worker.stats().cuts, 1, 'one cut, at the end of the log');
  await worker.close();
  await assertExactlyOnce(t, `${topic}/`, 6000);
});

serial('a topic written in transactions (each commit leaves a control record the consumer never sees): every record once, and the lag reaches 0', async (t) => {
  const topic = 'transactional';
  await env.kafka.createTopic(topic, 2);
  const producer = env.client.producer({ transactionalId: 'hostile-tx', idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  t.teardown(() => producer.disconnect());
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-tx', idleMs: 300, sink: { bucket: 'bucket', prefix: topic, windowMs: 1000, s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  for (let from = 0; from < 400; from += 100) {
    const tx = await producer.transaction();
    await tx.send({ topic, acks: -1, messages: Array.from({ length: 100 }, (_, i) => ({ partition: (from + i) % 2, timestamp: String(T0), value: JSON.stringify({ n: from + i, p: (from + i) % 2 }) })) });
    await tx.commit();
  }
  // An aborted transaction: its records are never delivered (read_committed), its offsets are passed.
  const aborted = await producer.transaction();
  await aborted.send({ topic, acks: -1, messages: [0, 1].map((p) => ({ partition: p, timestamp: String(T0), value: JSON.stringify({ n: -1, p }) })) });
  await aborted.abort();
  await eventually(() => worker.stats().eventsOut === 400, 'every record delivered', 30_000);
  await eventually(() => lagIsZero('g-tx', topic), 'every offset committed (past the control records)', 10_000);
  await worker.close();
  await assertExactlyOnce(t, `${topic}/`, 400);
});

/** The client id of the group's member that holds `partition` of `topic` now (null: none, or the group is rebalancing). */
async function holder(groupId: string, topic: string, partition: number): Promise<string | null> {
  try {
    const { groups } = await env.admin.describeGroups([groupId]);
    for (const member of groups[0]?.members ?? []) {
      const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
      if (assignment?.assignment[topic]?.includes(partition)) return member.clientId;
    }
    return null;
  } catch (err) {
    if ((err as { retriable?: boolean }).retriable) return null;
    throw err;
  }
}

/** Committed offsets of the group, by partition (-1: none); asked again while the group's coordinator moves or loads. */
async function committed(groupId: string, topic: string): Promise<number[]> {
  let found: number[] = [];
  await eventually(async () => {
    try {
      const offsets = await env.admin.fetchOffsets({ groupId, topics: [topic] });
      found = (offsets[0]?.partitions ?? []).sort((x, y) => x.partition - y.partition).map((p) => Number(p.offset));
      return true;
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable) return false;
      throw err;
    }
  }, `the committed offsets of ${groupId}`, 30_000);
  return found;
}

serial('the CLI without a spool, S3 answering 503 to every write: it stops with exit 1 without committing what failed, SIGTERM during the outage too; a restart delivers every record once', async (t) => {
  const topic = 'outage';
  await env.kafka.createTopic(topic, 2);
  const { proxy, block } = await blockableS3();
  t.teardown(() => proxy.close());
  await produce(topic, 2, 0, 1000, () => T0);
  const args = ['kafka', '--brokers', env.kafka.bootstrap, '--topic', topic, '--group', 'g-outage', '--bucket', 'bucket', '--prefix', `${topic}/`, '--endpoint', proxy.endpoint, '--no-check', '--idle', '300ms', '--window', '2s', '--retry-attempts', '3', '--retry-base', '50ms', '--retry-cap', '100ms'];
  block(true);
  // Its uploads give up: nothing to keep them in, so the worker stops.
  const first = startCli(args);
  t.teardown(() => first.child.kill('SIGKILL'));
  t.is((await first.exit).code, 1, first.stderr());
  t.regex(first.stderr(), /could not be delivered and there is no place to keep it/);
  t.deepEqual(await committed('g-outage', topic), [0, 0], 'no offset past what failed');
  // A worker stopped (SIGTERM) during the outage: close() waits for its uploads, which give up; exit 1, nothing committed.
  const tried = proxy.log.length;
  const second = startCli(args);
  t.teardown(() => second.child.kill('SIGKILL'));
  await eventually(() => proxy.log.length > tried, 'an upload tried', 30_000);
  second.child.kill('SIGTERM');
  t.is((await second.exit).code, 1, second.stderr());
  t.deepEqual(await committed('g-outage', topic), [0, 0]);
  // S3 back: a restart delivers everything, once.
  block(false);
  await produce(topic, 2, 1000, 1200, () => T0);
  const third = startCli(args);
  t.teardown(() => third.child.kill('SIGKILL'));
  await eventually(() => lagIsZero('g-outage', topic), 'every offset committed', 30_000);
  third.child.kill('SIGTERM');
  t.is((await third.exit).code, 0, third.stderr());
  await assertExactlyOnce(t, `${topic}/`, 1200);
});

serial('with a spool: SIGKILL while the restart delivers what the first run spooled (S3 slow), then a third start: every record once', async (t) => {
  const topic = 'recovery';
  await env.kafka.createTopic(topic, 3);
  const dir = await mkdtemp(join(tmpdir(), 's3sink-kafka-recovery-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { proxy, block } = await blockableS3(128 * 1024);
  t.teardown(() => proxy.close());
  const settings = { topic, groupId: 'g-recovery', prefix: topic, spoolDir: dir, endpoint: proxy.endpoint };
  block(true);
  // First run: S3 refuses every write; batches are sealed in the spool and committed; then kill -9.
  const first = startWorker(settings);
  t.teardown(() => first.process.kill('SIGKILL'));
  await produce(topic, 3, 0, 6000, (n) => T0 + Math.floor(n / 2000) * MINUTE, 100);
  await eventually(() => lagIsZero('g-recovery', topic), 'every offset committed (the batches sealed in the spool)', 60_000);
  first.process.kill('SIGKILL');
  await first.exited;
  const spooled = (await readdir(dir)).filter((name) => name.endsWith('.seg')).length;
  t.true(spooled >= 9, `${spooled} segments`);
  // Second run: S3 takes writes again, slowly; killed once its recovery has delivered one object.
  block(false);
  const second = startWorker(settings);
  t.teardown(() => second.process.kill('SIGKILL'));
  await eventually(() => second.objects.length >= 1, 'the recovery delivered an object', 60_000);
  second.process.kill('SIGKILL');
  await second.exited;
  t.is(second.recovered, null, 'killed before its recovery was done');
  // Third run: recovers the rest, then reads what came since.
  await produce(topic, 3, 6000, 7000, () => T0 + 3 * MINUTE, 100);
  const third = startWorker(settings);
  t.teardown(() => third.process.kill('SIGKILL'));
  await eventually(() => third.recovered !== null, "the third run's recovery", 60_000);
  await eventually(() => lagIsZero('g-recovery', topic), 'every offset committed', 60_000);
  third.process.kill('SIGTERM');
  t.is(await third.exited, 0, third.stderr.join('\n'));
  await assertExactlyOnce(t, `${topic}/`, 7000);
  t.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.seg')), [], 'the spool is empty');
});

serial('a rebalance storm: workers join, leave (SIGTERM) and die (SIGKILL) over and over while records come, S3 slow: every record once, lag 0', async (t) => {
  const topic = 'storm';
  await env.kafka.createTopic(topic, 8);
  const proxy = await startProxy(env.s3.port, { bytesPerSecond: 512 * 1024 });
  t.teardown(() => proxy.close());
  const settings = { topic, groupId: 'g-storm', prefix: topic, endpoint: proxy.endpoint, maxBufferedBytes: 1024 * 1024 };
  const workers: Child[] = [];
  t.teardown(() => workers.forEach((w) => w.process.kill('SIGKILL')));
  const signalled = new Set<Child>();
  const alive = () => workers.filter((w) => !signalled.has(w) && w.process.exitCode === null);
  const stopped: Promise<number | null>[] = [];
  workers.push(startWorker(settings), startWorker(settings));
  let n = 0;
  // Each round: records (about 300 KiB), then one change of membership.
  const changes = ['join', 'term', 'join', 'kill', 'join', 'term'] as const;
  for (const change of changes) {
    await produce(topic, 8, n, n + 3000, () => Date.now(), 60);
    n += 3000;
    if (change === 'join') workers.push(startWorker(settings));
    else {
      const victim = alive()[0] as Child;
      signalled.add(victim);
      await eventually(() => victim.started, 'the worker started', 30_000);
      victim.process.kill(change === 'term' ? 'SIGTERM' : 'SIGKILL');
      if (change === 'term') stopped.push(victim.exited);
    }
    await eventually(() => workers.some((w) => w.objects.length > 0), 'objects written', 30_000);
  }
  t.true(alive().length >= 2);
  await eventually(() => lagIsZero('g-storm', topic), 'the group caught up', 120_000);
  const last = alive();
  for (const w of last) w.process.kill('SIGTERM');
  t.deepEqual(await Promise.all([...stopped, ...last.map((w) => w.exited)]), [...stopped, ...last].map(() => 0), workers.flatMap((w) => w.stderr).filter((l) => !/S3SINK_KAFKA_RESET/.test(l)).join('\n'));
  await assertExactlyOnce(t, `${topic}/`, n);
});


serial('records stamped -1 ("no timestamp") and before 1970, which the broker takes: none is skipped (they were, silently, and committed past), every record once', async (t) => {
  const topic = 'epoch';
  await env.kafka.createTopic(topic, 1);
  const stamps = ['-1', String(-5 * 365 * 24 * 3600 * 1000), '0', String(T0), '-1'];
  await env.producer.send({ topic, acks: -1, messages: stamps.map((timestamp, n) => ({ partition: 0, timestamp, value: JSON.stringify({ n, p: 0 }) })) });
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-epoch', idleMs: 300, sink: { bucket: 'bucket', prefix: topic, s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => lagIsZero('g-epoch', topic), 'every offset committed', 20_000);
  await worker.close();
  const keys = await assertExactlyOnce(t, `${topic}/`, stamps.length);
  // Those before 1970 are filed under 1970-01-01, with the batch they open; the late one stays in its batch.
  t.deepEqual(keys.map((key) => new Date(parseKey(key)?.time ?? -1).toISOString()).sort(), ['1970-01-01T00:00:00.000Z', new Date(T0).toISOString()]);
});

serial('the broker killed (SIGKILL) while cuts are due and their commits wait, then restarted, records produced after: the worker goes on, every record once', async (t) => {
  const topic = 'broker-kill';
  await env.kafka.createTopic(topic, 2);
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-broker-kill', idleMs: 300, sessionTimeoutMs: 6000, sink: { bucket: 'bucket', prefix: topic, windowMs: 1000, s3: s3Options() } });
  const errors: string[] = [];
  worker.on('error', (err) => errors.push(err.message));
  t.teardown(() => worker.close().catch(() => {}));
  await produce(topic, 2, 0, 1000, () => T0);
  await eventually(() => worker.stats().records === 1000, 'all read', 30_000);
  // The batches are open; their idle cuts come while the broker is down, and wait for it to record them.
  env.kafka.kill();
  await eventually(() => worker.stats().cuts >= 2, 'both partitions cut', 10_000);
  await env.kafka.restart();
  await env.producer.disconnect();
  await env.producer.connect();
  await produce(topic, 2, 1000, 2000, () => T0);
  await eventually(() => lagIsZero('g-broker-kill', topic), 'every offset committed', 60_000);
  await worker.close();
  t.deepEqual(errors, []);
  await assertExactlyOnce(t, `${topic}/`, 2000);
});

serial('many partitions with a few records each (32 × 10): every batch ends by an idle cut, every record once, lag 0', async (t) => {
  const topic = 'sparse';
  await env.kafka.createTopic(topic, 32);
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-sparse', idleMs: 200, sink: { bucket: 'bucket', prefix: topic, windowMs: 1000, s3: s3Options() } });
  t.teardown(() => worker.close().catch(() => {}));
  await produce(topic, 32, 0, 320);
  await eventually(() => lagIsZero('g-sparse', topic), 'every offset committed', 30_000);
  const { cuts, batches } = worker.stats();
  await worker.close();
  t.true(cuts >= 32, `${cuts} cuts, ${batches} batches`);
  await assertExactlyOnce(t, `${topic}/`, 320);
});

serial('a worker stopped (SIGSTOP) with a batch open while another reads on and commits past it, then continued: its cut fails to commit, and the seek made then (to its own, older, committed offset), which kafkajs applies when the partition is back, does not make it write again what the other committed past; every record once', async (t) => {
  const topic = 'stale-seek';
  await env.kafka.createTopic(topic, 1);
  const T1 = T0 + MINUTE;
  // A sorts before B (member ids start with the client id): with both in the group, the partition is A's. A cuts an idle batch after 1 s.
  const a = startWorker({ topic, groupId: 'g-stale-seek', prefix: topic, idleMs: 1000, clientId: 'a-worker' });
  t.teardown(() => a.process.kill('SIGKILL'));
  // 0..49 in one minute, 50 in the next: A writes [0, 49] (the log's rule), commits 50, and holds [50] open.
  await produce(topic, 1, 0, 50, () => T0);
  await produce(topic, 1, 50, 51, () => T1);
  await eventually(async () => (await committed('g-stale-seek', topic))[0] === 50, 'a committed 50', 30_000);
  a.process.kill('SIGSTOP');
  // B takes the partition once A's session runs out, from offset 50: [50] cut when idle, then [51, 59]; it commits 60.
  const b = startWorker({ topic, groupId: 'g-stale-seek', prefix: topic, clientId: 'b-worker' });
  t.teardown(() => b.process.kill('SIGKILL'));
  await eventually(() => b.objects.length === 1, 'b wrote [50]', 60_000);
  await produce(topic, 1, 51, 60, () => T1);
  await eventually(() => b.objects.length === 2, 'b wrote [51, 59]', 30_000);
  await eventually(() => lagIsZero('g-stale-seek', topic), 'b committed 60', 30_000);
  // A comes back: its idle cut of [50] fails to commit (its membership is gone: a reset, which seeks to 50), it joins again and gets the partition.
  a.process.kill('SIGCONT');
  await eventually(() => a.stderr.some((line) => /S3SINK_KAFKA_RESET/.test(line)), "a's cut could not be recorded", 30_000);
  await eventually(async () => (await holder('g-stale-seek', topic, 0)) === 'a-worker', 'the partition is A\'s again', 30_000);
  await produce(topic, 1, 60, 61, () => T1 + MINUTE);
  await eventually(() => a.objects.length >= 2, 'a wrote again', 30_000);
  await eventually(() => lagIsZero('g-stale-seek', topic), 'every offset committed', 30_000);
  a.process.kill('SIGTERM');
  b.process.kill('SIGTERM');
  t.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
  await assertExactlyOnce(t, `${topic}/`, 61);
});

serial('batches on their way hold no more than the budget says once compressed: 20 MiB of lines that compress 100-fold, a 1 MiB budget, S3 answering 503 (the lines were held until delivered, out of the budget)', async (t) => {
  const topic = 'memory';
  await env.kafka.createTopic(topic, 1);
  const { proxy, block } = await blockableS3();
  t.teardown(() => proxy.close());
  // 10 000 records of 2 KiB that compress 100-fold: 20 MiB of lines, 38 batches of 512 KiB (half the budget).
  const text = 'abcdefghij'.repeat(200);
  for (let from = 0; from < 10_000; from += 500) await env.producer.send({ topic, acks: -1, messages: Array.from({ length: 500 }, (_, i) => ({ partition: 0, timestamp: String(T0), value: JSON.stringify({ n: from + i, p: 0, text }) })) });
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  // The lines are Buffers (slices of what the client fetched): they are in arrayBuffers.
  const used = () => {
    gc();
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  block(true);
  const before = used();
  const worker = consumeKafka({ brokers: env.kafka.brokers, topics: [topic], groupId: 'g-memory', idleMs: 300, sink: { bucket: 'bucket', prefix: topic, maxBufferedBytes: 1024 * 1024, retry: { attempts: 100, baseMs: 100, capMs: 500 }, s3: s3Options(proxy.endpoint) } });
  t.teardown(() => worker.close().catch(() => {}));
  await eventually(() => worker.stats().records === 10_000 && worker.stats().cuts >= 1, 'all read, none delivered', 60_000);
  // Every batch is in the chain, compressed; nothing is delivered. (Before: 20 MiB held; now about 1, the client's buffers included.)
  const held = used() - before;
  t.true(held < 5 * 2 ** 20, `${(held / 2 ** 20).toFixed(1)} MiB held for ${worker.stats().bufferedBytes} bytes in the budget`);
  t.true(worker.stats().peakBufferedBytes <= 1024 * 1024);
  block(false);
  await eventually(() => lagIsZero('g-memory', topic), 'every offset committed', 60_000);
  await worker.close();
  await assertExactlyOnce(t, `${topic}/`, 10_000);
});
