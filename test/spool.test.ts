import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { s3Sink, SpoolLockedError, type DeadLetter, type Delivered, type Receipt, type Recovered, type Rejection, type SinkWarning } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { noisyLine, prng } from './helpers/data.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket', 'other'], {});
const zcat = (path: string) => promisify(execFile)('zcat', [path], { maxBuffer: 64 * 1024 * 1024 }).then((r) => r.stdout);

async function tempDir(t: import('ava').ExecutionContext, name = 'spool'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `s3-sink-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const segments = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.seg'));

test('acks: each comes back once in durable, then once in delivered; a rejected one in rejected; none without an ack', async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'acks/', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir, fsync: 'interval', fsyncIntervalMs: 5 } });
  const durable: unknown[] = [];
  const delivered: unknown[] = [];
  const rejected: Rejection[] = [];
  const order: string[] = [];
  sink.on('durable', (acks) => {
    durable.push(...acks);
    order.push(...acks.map((a) => `durable ${String(a)}`));
  });
  sink.on('delivered', (d: Delivered) => {
    delivered.push(...d.acks);
    order.push(...d.acks.map((a) => `delivered ${String(a)}`));
  });
  sink.on('rejected', (r: Rejection) => rejected.push(r));
  const records = Array.from({ length: 300 }, (_, n) => (n === 150 ? { payload: 10n, ack: 'bad' } : n % 10 === 0 ? { payload: { n } } : { prefix: `acks/${n % 3}/`, payload: { n }, ack: n }));
  await pipeline(Readable.from(records), sink);

  const expected = records.filter((r) => r.ack !== undefined && r.ack !== 'bad').map((r) => r.ack);
  t.deepEqual([...durable].sort(), [...expected].sort());
  t.deepEqual([...delivered].sort(), [...expected].sort());
  t.deepEqual(rejected.map((r) => [r.code, r.ack]), [['ERR_S3SINK_PAYLOAD', 'bad']]);
  for (const ack of expected) t.true(order.indexOf(`durable ${String(ack)}`) < order.indexOf(`delivered ${String(ack)}`), `ack ${String(ack)} durable before delivered`);
  t.deepEqual(segments(dir), [], 'every segment deleted once delivered');
  t.is(sink.stats().durableEvents, 299, 'every event taken, with an ack or without');
});

test("'delivered' works without a spool: the acks of each object, once", async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'acks-memory/', s3: env.s3.s3Config, clock: fixedClock() });
  const delivered: Delivered[] = [];
  const receipts: Receipt[] = [];
  sink.on('delivered', (d: Delivered) => delivered.push(d));
  sink.on('object', (r: Receipt) => receipts.push(r));
  await pipeline(Readable.from(Array.from({ length: 100 }, (_, n) => ({ prefix: `acks-memory/${n % 2}/`, payload: `line ${n}`, ack: { n } }))), sink);
  t.is(delivered.length, 2);
  t.deepEqual(delivered.map((d) => d.key).sort(), receipts.map((r) => r.key).sort());
  const acked = delivered.flatMap((d) => d.acks as { n: number }[]).map((a) => a.n).sort((a, b) => a - b);
  t.deepEqual(acked, Array.from({ length: 100 }, (_, n) => n));
  for (const d of delivered) t.deepEqual((await env.s3.lines('bucket', d.key)).map((l) => Number(l.split(' ')[1])), (d.acks as { n: number }[]).map((a) => a.n));
});

/** Runs a sink with a spool over `records`, keeping a copy of its segments as they were at each durable ack (the last copy is the whole batch). */
async function deliverKeepingSegments(t: import('ava').ExecutionContext, dir: string, prefix: string, records: unknown[], options: Parameters<typeof s3Sink>[0] = {}) {
  const copies = await tempDir(t, 'copies');
  const sink = s3Sink({ bucket: 'bucket', prefix, s3: env.s3.s3Config, clock: fixedClock(), spool: { dir, fsync: 'always' }, ...options });
  sink.on('durable', () => {
    for (const name of segments(dir)) copyFileSync(join(dir, name), join(copies, name));
  });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  // Written at once: they reach the spool in one or two pieces (a data record each).
  for (const record of records) sink.write(record);
  await sink.close();
  return { copies, receipts };
}

test('a segment left by a crash after its object was complete: delivered again under the same key with identical bytes, then deleted', async (t) => {
  const dir = await tempDir(t);
  const records = Array.from({ length: 2000 }, (_, n) => ({ payload: { n, text: 'recover me' }, ack: n }));
  const { copies, receipts } = await deliverKeepingSegments(t, dir, 'same-key/', records);
  t.is(receipts.length, 1);
  const before = await env.s3.raw('bucket', receipts[0]!.key);
  // What kill -9 between CompleteMultipartUpload and the segment's deletion leaves:
  for (const name of await readdir(copies)) copyFileSync(join(copies, name), join(dir, name));
  t.is(segments(dir).length, 1);

  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const recovered: Recovered[] = [];
  const again: Receipt[] = [];
  sink.on('recovered', (r: Recovered) => recovered.push(r));
  sink.on('object', (r: Receipt) => again.push(r));
  await sink.close();
  t.deepEqual(again.map((r) => r.key), [receipts[0]!.key], 'the same key');
  t.deepEqual(recovered, [{ batches: 1, events: 2000, bytes: receipts[0]!.bytes }]);
  t.true((await env.s3.raw('bucket', receipts[0]!.key)).equals(before), 'identical bytes');
  t.deepEqual(await env.s3.keys('bucket', 'same-key/'), [receipts[0]!.key], 'no second object');
  t.deepEqual(segments(dir), []);
  t.is(sink.stats().recoveredEvents, 2000);
});

test('with parallelGzip too, a re-delivered batch makes the same gzip members, and so the same bytes', async (t) => {
  const dir = await tempDir(t);
  const random = prng(31);
  const words = Array.from({ length: 512 }, () => noisyLine(random, 12));
  // Lines of 40 KB written at once reach the spool as one piece of several MiB; read back, they come in pieces of 1 MiB.
  const records = Array.from({ length: 120 }, (_, n) => ({ payload: Array.from({ length: 3000 }, (_, w) => words[(n * 31 + w * 7) % 512]).join(' '), ack: n }));
  const { copies, receipts } = await deliverKeepingSegments(t, dir, 'parallel-same/', records, { parallelGzip: true });
  t.is(receipts.length, 1);
  t.true(receipts[0]!.bytes > 3 * 1024 * 1024, 'several members');
  const before = await env.s3.raw('bucket', receipts[0]!.key);
  for (const name of await readdir(copies)) copyFileSync(join(copies, name), join(dir, name));
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir }, parallelGzip: true });
  await sink.close();
  t.true((await env.s3.raw('bucket', receipts[0]!.key)).equals(before), 'identical bytes');
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), records.map((r) => r.payload));
});

test('a segment cut mid-record: recovered up to the last whole event, the cut reported', async (t) => {
  const dir = await tempDir(t);
  const records = Array.from({ length: 50 }, (_, n) => ({ payload: `event ${n} ${'x'.repeat(40)}`, ack: n }));
  const { copies, receipts } = await deliverKeepingSegments(t, dir, 'torn/', records);
  const [name] = await readdir(copies);
  const path = join(dir, name!);
  copyFileSync(join(copies, name!), path);
  // Cut 30 bytes into the 11th line (lines lie in the file as they are, between record heads).
  await truncate(path, (await readFile(path)).indexOf('event 10 ') + 30);

  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const warnings: SinkWarning[] = [];
  const again: Receipt[] = [];
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  sink.on('object', (r: Receipt) => again.push(r));
  await sink.close();
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), records.slice(0, 10).map((r) => r.payload), 'the ten whole events before the cut');
  const torn = warnings.find((w) => w.code === 'S3SINK_SPOOL_TORN');
  t.truthy(torn);
  t.regex(torn!.message, /ends in a record cut short by a crash: \d+ whole lines of it kept, 30 bytes dropped \(never reported durable\)$/);
  t.deepEqual(segments(dir), []);
});

test('one process per spool directory: a second sink gets a clear error; a lock left by a dead process is taken over', async (t) => {
  const dir = await tempDir(t);
  const first = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const error = t.throws(() => s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } }), { instanceOf: SpoolLockedError });
  t.is(error?.code, 'ERR_S3SINK_SPOOL_LOCKED');
  t.regex(error!.message, new RegExp(`spool .+ is in use by process ${process.pid} on .+: one sink per spool directory`));
  await first.close();
  // A pid that is not running (the highest possible is never handed out here).
  const { hostname } = await import('node:os');
  await writeFile(join(dir, 'lock'), `4194303 ${hostname()}\n`);
  const warnings: SinkWarning[] = [];
  const second = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  second.on('warning', (w: SinkWarning) => warnings.push(w));
  await second.close();
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_SPOOL_STALE_LOCK']);
  t.false(readdirSync(dir).includes('lock'), 'the lock is freed at the end');
});

test('S3 unreachable for 60 s mid-run (connections refused), spool on: everything delivered, nothing lost, the outage retried from disk', async (t) => {
  t.timeout(150_000);
  const dir = await tempDir(t);
  const sink = s3Sink({
    bucket: 'bucket',
    prefix: 'outage/',
    s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint },
    spool: { dir },
    windowMs: 2_000,
    retry: { attempts: 3, baseMs: 50, capMs: 500 },
  });
  const receipts: Receipt[] = [];
  const warnings: SinkWarning[] = [];
  const durable: number[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  sink.on('durable', (acks) => durable.push(...(acks as number[])));
  let n = 0;
  const write = async (count: number) => {
    for (const end = n + count; n < end; n++) if (!sink.write({ payload: { n }, ack: n })) await new Promise((resume) => sink.once('drain', resume));
  };
  await write(1000);
  await env.proxy.down();
  const downAt = Date.now();
  // Input goes on during the outage: it is taken, written to disk and acknowledged durable.
  for (let i = 0; i < 10; i++) {
    await write(500);
    await new Promise((resume) => setTimeout(resume, 500));
  }
  t.is(durable.length >= 5000, true, `${durable.length} events durable during the outage`);
  await new Promise((resume) => setTimeout(resume, Math.max(0, 60_000 - (Date.now() - downAt))));
  await env.proxy.up();
  await write(1000);
  await sink.close();

  const seen: number[] = [];
  for (const r of receipts) for (const line of await env.s3.lines('bucket', r.key)) seen.push((JSON.parse(line) as { n: number }).n);
  t.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'every event once');
  t.true(sink.stats().redelivered > 0, 'uploads that failed went back to the spool');
  t.true(warnings.some((w) => w.code === 'S3SINK_REDELIVER'));
  t.deepEqual(segments(dir), []);
});

test('one destination whose bucket is missing, four fine, spool on: the four delivered, the fifth dead-lettered whole with its acks', async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir } });
  const letters: DeadLetter[] = [];
  const receipts: Receipt[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  sink.on('object', (r: Receipt) => receipts.push(r));
  const records = Array.from({ length: 500 }, (_, n) => (n % 5 === 4 ? { bucket: 'no-such-bucket', prefix: 'lost/', payload: { n }, ack: n } : { prefix: `fine/${n % 5}/`, payload: { n }, ack: n }));
  await pipeline(Readable.from(records), sink);

  t.is(receipts.length, 4);
  t.is(letters.length, 1);
  const letter = letters[0]!;
  t.is(letter.code, 'NoSuchBucket');
  t.is(letter.path, join(dir, 'dead', 'no-such-bucket', ...letter.key.split('/')));
  t.deepEqual(letter.acks, records.filter((r) => r.bucket).map((r) => r.ack));
  t.is(await zcat(letter.path!), records.filter((r) => r.bucket).map((r) => `${JSON.stringify(r.payload)}\n`).join(''));
  const sidecar = JSON.parse(await readFile(`${letter.path}.json`, 'utf8')) as DeadLetter;
  t.is(sidecar.key, letter.key);
  t.is(sidecar.events, 100);
  t.is(sidecar.compressedBytes, (await stat(letter.path!)).size);
  t.deepEqual(segments(dir), []);
  t.is(sink.stats().deadLetteredEvents, 100);
});

test('without a spool, one destination whose bucket is missing: the others are delivered, and close() rejects at the end naming it', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock: fixedClock() });
  const letters: DeadLetter[] = [];
  const receipts: Receipt[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  sink.on('object', (r: Receipt) => receipts.push(r));
  const records = Array.from({ length: 500 }, (_, n) => (n % 5 === 4 ? { bucket: 'no-such-bucket', prefix: 'lost/', payload: { n }, ack: n } : { prefix: `kept/${n % 5}/`, payload: { n } }));
  const error = await t.throwsAsync(pipeline(Readable.from(records), sink));
  t.regex(error!.message, /^upload of s3:\/\/no-such-bucket\/lost\/\S+\.gz failed: NoSuchBucket: /);
  t.is(receipts.length, 4, 'the four other destinations are in S3');
  for (const r of receipts) t.is((await env.s3.lines('bucket', r.key)).length, 100);
  t.is(letters.length, 1);
  t.is(letters[0]!.path, null);
  t.is(letters[0]!.acks?.length, 100);
  t.is(sink.stats().lostEvents, 100);
});

test('options: spool is validated, and not with deadLetter', (t) => {
  t.throws(() => s3Sink({ spool: { dir: '' } }), { message: /option spool.dir: got "", expected a directory path/ });
  t.throws(() => s3Sink({ spool: { dir: '/tmp/x', fsync: 'sometimes' as never } }), { message: /option spool.fsync: got "sometimes", expected one of 'always', 'interval', 'never'/ });
  t.throws(() => s3Sink({ spool: { dir: '/tmp/x', dri: 1 } as never }), { message: /option spool.dri: .*no such field/ });
  t.throws(() => s3Sink({ spool: { dir: '/tmp/x' }, deadLetter: '/tmp/y' }), { message: /option deadLetter: .* no deadLetter with a spool/ });
});

