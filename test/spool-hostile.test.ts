import test from 'ava';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { s3Sink, SpoolLockedError, type DeadLetter, type FsyncPolicy, type S3Sink, type SinkWarning } from '../lib/index.js';
import { formatKey, newIdentifier } from '../lib/key.js';
import { DATA, encodeHeader, RECORD_HEADER_BYTES, recordHead } from '../lib/segment.js';
import { fixedClock } from './helpers/clock.js';
import { noisyLine, prng } from './helpers/data.js';
import { useLocalS3 } from './helpers/s3.js';

// Hostile tests of the durable spool: each one a defect found and fixed. One at a time:
// several are heavy (thousands of batches, six processes), and they share one s3rver.

const env = useLocalS3(test, ['bucket']);

async function tempDir(t: import('ava').ExecutionContext, name = 'hostile'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `s3-sink-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** File descriptors of this process open on files in `dir`. */
function openIn(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n += 1;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

test.serial("fsync 'always' with 1200 open batches: segment files are closed past the limit of 256, not kept open one per batch (EMFILE at ulimit 1024)", async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'many/', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir, fsync: 'always' } });
  let peak = 0;
  sink.on('durable', () => {
    peak = Math.max(peak, openIn(dir));
  });
  for (let round = 0; round < 3; round++) {
    for (let n = 0; n < 1200; n++) if (!sink.write({ prefix: `many/${n}/`, payload: { n, round }, ack: n })) await new Promise((resume) => sink.once('drain', resume));
  }
  await sink.close();
  t.log({ peak });
  // 256, and more while the pieces of one chunk are written side by side; before the fix, one per batch (1200).
  t.true(peak < 600, `${peak} segment files open at once`);
});

const segments = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.seg'));

/** A segment as the spool writes it: a header, then one data record per buffer. */
function segmentBytes(bucket: string, key: string, records: Buffer[]): Buffer {
  return Buffer.concat([encodeHeader({ v: 1, bucket, key, openedAt: 1_700_000_000_000 }), ...records.flatMap((data) => [recordHead(DATA, data), data])]);
}

/** Where the spool keeps the segment of `bucket`/`key` (as Spool.pathOf names it). */
function spoolPath(dir: string, bucket: string, key: string): string {
  return join(dir, `${createHash('sha256').update(`${bucket}\u0000${key}`).digest('hex').slice(0, 40)}.seg`);
}

/** Starts a sink on `dir`, closes it at once (it delivers what the spool holds) and returns its warnings. */
async function restart(dir: string): Promise<SinkWarning[]> {
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const warnings: SinkWarning[] = [];
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  await sink.close();
  return warnings;
}

test.serial('a leftover segment whose header record is damaged (crc): kept aside in dead/ with a warning, not deleted with the events after it', async (t) => {
  const dir = await tempDir(t);
  const key = formatKey('damaged-header', 1_700_000_000_000, newIdentifier());
  const bytes = segmentBytes('bucket', key, [Buffer.from('{"n":1}\n{"n":2}\n')]);
  bytes[RECORD_HEADER_BYTES + 3] = (bytes[RECORD_HEADER_BYTES + 3] as number) ^ 0xff; // a byte of the header's JSON changed: its crc no longer matches
  await writeFile(spoolPath(dir, 'bucket', key), bytes);

  const warnings = await restart(dir);
  t.deepEqual(segments(dir), []);
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_SPOOL_UNREADABLE']);
  t.regex(warnings[0]!.message, /cannot be read \(header record damaged\): moved to /);
  const kept = (await readdir(join(dir, 'dead'))).filter((name) => name.startsWith('unreadable-'));
  t.is(kept.length, 1, 'the damaged segment is in dead/');
  t.true((await readFile(join(dir, 'dead', kept[0]!))).equals(bytes), 'as it was');
});

test.serial('a file of garbage named *.seg in the spool: kept aside with a warning, not deleted unseen', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'f00.seg'), 'this is not a segment, but someone put it here\n');
  const warnings = await restart(dir);
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_SPOOL_UNREADABLE']);
  t.is((await readdir(join(dir, 'dead'))).filter((name) => name.startsWith('unreadable-')).length, 1);
});

test.serial('a leftover cut inside its header (a crash right after creating it) is still dropped quietly', async (t) => {
  const dir = await tempDir(t);
  const key = formatKey('torn-header', 1_700_000_000_000, newIdentifier());
  await writeFile(spoolPath(dir, 'bucket', key), segmentBytes('bucket', key, []).subarray(0, 20));
  t.deepEqual(await restart(dir), []);
  t.deepEqual(segments(dir), []);
  t.deepEqual(await readdir(join(dir, 'dead')), []);
});

test.serial('one spool directory reached by two paths (a symlink) in one process: the second sink is refused, not handed the first one\'s lock as stale', async (t) => {
  const dir = await tempDir(t);
  const link = `${dir}-link`;
  symlinkSync(dir, link);
  t.teardown(() => rm(link, { force: true }));
  const first = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const warnings: SinkWarning[] = [];
  first.on('warning', (w: SinkWarning) => warnings.push(w));
  let second: S3Sink | null = null;
  const error = t.throws(() => (second = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir: link } })), { instanceOf: SpoolLockedError });
  t.is(error?.pid, process.pid);
  await (second as S3Sink | null)?.close();
  await first.close();
  t.deepEqual(warnings, []);
  t.false(readdirSync(dir).includes('lock'), 'the lock is freed at the end');
});


for (const fsync of ['never', 'interval', 'always'] as FsyncPolicy[]) {
  test.serial(`destroy() mid-run, then a new sink on the same spool at 'close' (fsync '${fsync}'): no 'durable' after 'close', every durable event in S3 once`, async (t) => {
    const dir = await tempDir(t);
    const prefix = `destroyed-${fsync}/`;
    const sink = s3Sink({ bucket: 'bucket', prefix, s3: env.s3.s3Config, spool: { dir, fsync, fsyncIntervalMs: 5 }, windowMs: 300 });
    const durable = new Set<number>();
    let closed = false;
    let durableAfterClose = 0;
    sink.on('durable', (acks) => {
      if (closed) durableAfterClose += acks.length;
      for (const ack of acks as number[]) durable.add(ack);
    });
    sink.on('error', () => {});
    const SENT = 20_000;
    for (let n = 0; n < SENT; n++) {
      if (!sink.write({ prefix: `${prefix}${n % 7}/`, payload: { n, pad: 'q'.repeat(n % 300) }, ack: n })) await new Promise((resume) => sink.once('drain', resume));
    }
    // Pieces are on their way into the spool's files when it stops.
    sink.destroy(new Error('stopped'));
    await new Promise((resume) => sink.once('close', resume));
    closed = true;
    const again = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
    await again.close();

    t.is(durableAfterClose, 0, "no 'durable' after 'close'");
    const seen = await env.s3.countEvents('bucket', prefix);
    t.deepEqual([...seen].filter(([, count]) => count > 1), [], 'no event twice');
    t.deepEqual([...durable].filter((n) => !seen.has(n)), [], 'every event reported durable is in S3');
    t.deepEqual([...seen.keys()].filter((n) => n >= SENT), [], 'nothing unsent');
    t.deepEqual(segments(dir), []);
  });
}

test.serial('six processes starting at once on a spool a dead process left locked: exactly one takes it, ten rounds', async (t) => {
  t.timeout(120_000);
  const CHILD = fileURLToPath(new URL('./fixtures/lock-child.mjs', import.meta.url));
  for (let round = 0; round < 10; round++) {
    const dir = await mkdtemp(join(tmpdir(), 's3-sink-lockrace-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'lock'), `4194303 ${hostname()}\n`);
    const go = join(dir, 'go');
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, [CHILD, dir, go], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const closed = children.map((child) => new Promise((resolve) => child.once('close', resolve)));
    const lines = children.map((child) => createInterface({ input: child.stdout })[Symbol.asyncIterator]());
    const next = async (i: number) => ((await lines[i]!.next()).value as string | undefined) ?? '';
    // All six ready (waiting for `go`), then they race.
    t.deepEqual(await Promise.all(children.map((_, i) => next(i))), Array(6).fill('ready'));
    await writeFile(go, '');
    const said = await Promise.all(children.map((_, i) => next(i)));
    for (const child of children) child.stdin.end();
    await Promise.all(closed);
    t.is(said.filter((s) => s === 'locked').length, 1, `round ${round}: ${said.join(', ')}`);
    t.true(said.filter((s) => s !== 'locked').every((s) => s === 'refused ERR_S3SINK_SPOOL_LOCKED'), said.join(', '));
  }
});

test.serial('a data record whose length field is damaged is found as damage, not taken for a torn record: only whole events that were sent reach S3', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-len-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const key = formatKey('len', 1_700_000_000_000, newIdentifier());
  const records = [0, 1, 2].map((r) => Buffer.from(`${JSON.stringify({ n: 2 * r })}\n${JSON.stringify({ n: 2 * r + 1 })}\n`));
  const header = encodeHeader({ v: 1, bucket: 'bucket', key, openedAt: 1_700_000_000_000 });
  const heads = records.map((d) => recordHead(DATA, d));
  heads[1]!.writeUInt32BE(0x00ffffff, 1); // a bit flip in the second record's length
  await writeFile(join(dir, `${createHash('sha256').update(`bucket\u0000${key}`).digest('hex').slice(0, 40)}.seg`), Buffer.concat([header, ...records.flatMap((d, i) => [heads[i]!, d])]));
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir } });
  const warnings: SinkWarning[] = [];
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  await sink.close();
  t.deepEqual(await env.s3.lines('bucket', key), ['{"n":0}', '{"n":1}'], 'the record before the damage, nothing after it');
  t.true(warnings.some((w) => w.code === 'S3SINK_SPOOL_CORRUPT'), warnings.map((w) => w.code).join());
});

test.serial('a leftover larger than a budget of under two parts (5.875 MiB, parts of 5 MiB) is replayed to the end, not waited on forever', async (t) => {
  t.timeout(60_000);
  const MiB = 1024 * 1024;
  const dir = await tempDir(t, 'replay-budget');
  const key = formatKey('replay-budget', 1_700_000_000_000, newIdentifier());
  const random = prng(7);
  const records: Buffer[] = [];
  for (let r = 0; r < 12 * 16; r++) records.push(Buffer.from(Array.from({ length: 64 }, () => `${noisyLine(random, 1023)}\n`).join('')));
  const bytes = Buffer.concat([encodeHeader({ v: 1, bucket: 'bucket', key, openedAt: 1_700_000_000_000 }), ...records.flatMap((d) => [recordHead(DATA, d), d])]);
  await writeFile(join(dir, `${createHash('sha256').update(`bucket\u0000${key}`).digest('hex').slice(0, 40)}.seg`), bytes);
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, spool: { dir }, maxBufferedBytes: 5.875 * MiB, partSize: 5 * MiB });
  await sink.close();
  const lines = await env.s3.lines('bucket', key);
  t.is(lines.length, 12 * 16 * 64);
  t.true(sink.stats().peakBufferedBytes <= 5.875 * MiB + 5 * MiB + 2 * MiB, `peak ${sink.stats().peakBufferedBytes}`);
});

test.serial('a batch sent back to the spool whose segment is gone before its turn: reported lost with its acks, and close() rejects instead of waiting forever', async (t) => {
  const dir = await tempDir(t, 'sent-back-gone');
  const real = new S3Client({ maxAttempts: 1, ...env.s3.s3Config });
  t.teardown(() => real.destroy());
  let refused = 0;
  // The first PutObject is answered 503 SlowDown (can pass): the batch goes back to the spool.
  const client = {
    config: real.config,
    async send(command: { constructor: { name: string } }, options?: unknown) {
      if (command.constructor.name === 'PutObjectCommand' && refused++ === 0) {
        throw Object.assign(new Error('Slow Down'), { name: 'SlowDown', Code: 'SlowDown', $fault: 'server', $metadata: { httpStatusCode: 503 } });
      }
      return real.send(command as never, options as never);
    },
  } as unknown as S3Client;
  const sink = s3Sink({ bucket: 'bucket', prefix: 'sent-back/', client, clock: fixedClock(), spool: { dir }, retry: { attempts: 1 } });
  const letters: DeadLetter[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  const sentBack = new Promise<void>((resolve) => sink.on('warning', (w: SinkWarning) => w.code === 'S3SINK_REDELIVER' && resolve()));
  for (let n = 0; n < 10; n++) sink.write({ payload: { n }, ack: n });
  const closing = sink.close();
  await sentBack;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.seg'))) await rm(join(dir, name)); // gone before the retry
  const error = await t.throwsAsync(closing);
  t.regex(error!.message, /upload of s3:\/\/bucket\/sent-back\/\S+ failed and its spool segment \S+ is gone: its 10 events are not delivered/);
  t.is(letters.length, 1);
  t.is(letters[0]!.path, null);
  t.deepEqual(letters[0]!.acks, Array.from({ length: 10 }, (_, n) => n));
  t.is(sink.stats().lostEvents, 10);
});
