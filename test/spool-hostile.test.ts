import test from 'ava';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { s3Sink, SpoolLockedError, type FsyncPolicy, type S3Sink, type SinkWarning } from '../lib/index.js';
import { formatKey, newIdentifier } from '../lib/key.js';
import { DATA, encodeHeader, RECORD_HEADER_BYTES, recordHead } from '../lib/segment.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

// Hostile tests of the durable spool: each one a defect found and fixed.

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

test("fsync 'always' with 1200 open batches: segment files are closed past the limit of 256, not kept open one per batch (EMFILE at ulimit 1024)", async (t) => {
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

test('a leftover segment whose header record is damaged (crc): kept aside in dead/ with a warning, not deleted with the events after it', async (t) => {
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

test('a file of garbage named *.seg in the spool: kept aside with a warning, not deleted unseen', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'f00.seg'), 'this is not a segment, but someone put it here\n');
  const warnings = await restart(dir);
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_SPOOL_UNREADABLE']);
  t.is((await readdir(join(dir, 'dead'))).filter((name) => name.startsWith('unreadable-')).length, 1);
});

test('a leftover cut inside its header (a crash right after creating it) is still dropped quietly', async (t) => {
  const dir = await tempDir(t);
  const key = formatKey('torn-header', 1_700_000_000_000, newIdentifier());
  await writeFile(spoolPath(dir, 'bucket', key), segmentBytes('bucket', key, []).subarray(0, 20));
  t.deepEqual(await restart(dir), []);
  t.deepEqual(segments(dir), []);
  t.deepEqual(await readdir(join(dir, 'dead')), []);
});

test('one spool directory reached by two paths (a symlink) in one process: the second sink is refused, not handed the first one\'s lock as stale', async (t) => {
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

/** Every event number under `prefix` in the bucket, with how often it appears. */
async function eventsInS3(prefix: string): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  for (const key of await env.s3.keys('bucket', prefix)) {
    for (const line of await env.s3.lines('bucket', key)) {
      const { n } = JSON.parse(line) as { n: number };
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  return seen;
}

for (const fsync of ['never', 'interval', 'always'] as FsyncPolicy[]) {
  test(`destroy() mid-run, then a new sink on the same spool at 'close' (fsync '${fsync}'): no 'durable' after 'close', every durable event in S3 once`, async (t) => {
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
    const seen = await eventsInS3(prefix);
    t.deepEqual([...seen].filter(([, count]) => count > 1), [], 'no event twice');
    t.deepEqual([...durable].filter((n) => !seen.has(n)), [], 'every event reported durable is in S3');
    t.deepEqual([...seen.keys()].filter((n) => n >= SENT), [], 'nothing unsent');
    t.deepEqual(segments(dir), []);
  });
}
