import test from 'ava';
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { s3Sink, type Receipt, type S3Sink, type SinkWarning } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], {});

/** A tmpfs of `size` mounted on a new directory (needs root, as CI has), or why there is none. */
function mountTmpfs(size: string): { dir: string; unmount(): void } | string {
  const dir = execFileSync('mktemp', ['-d', join(tmpdir(), 's3-sink-tmpfs-XXXXXX')]).toString().trim();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    execFileSync('rmdir', [dir]);
    return `cannot mount a tmpfs (${(err as Error).message.split('\n')[0]}): it needs root`;
  }
  return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
}

const probe = mountTmpfs('64k');
const noTmpfs = typeof probe === 'string' ? probe : null;
if (typeof probe !== 'string') probe.unmount();
if (noTmpfs) console.log(`spool-full: the full-disk test is skipped: ${noTmpfs}`);

function write(sink: S3Sink, from: number, count: number): Promise<void> {
  return (async () => {
    for (let n = from; n < from + count; n++) {
      if (!sink.write({ payload: { n, pad: 'p'.repeat(200) }, ack: n })) await new Promise((resume) => sink.once('drain', resume));
    }
  })();
}

async function eventsIn(receipts: Receipt[]): Promise<number[]> {
  const seen: number[] = [];
  for (const r of receipts) for (const line of await env.s3.lines('bucket', r.key)) seen.push((JSON.parse(line) as { n: number }).n);
  return seen.sort((a, b) => a - b);
}

(noTmpfs ? test.skip : test)('a disk that fills (a small tmpfs): backpressure and a warning, nothing lost, all delivered once space is freed', async (t) => {
  const mount = mountTmpfs('2m') as { dir: string; unmount(): void };
  t.teardown(() => mount.unmount());
  const dir = join(mount.dir, 'spool');
  const filler = join(mount.dir, 'filler');
  const { bavail, bsize } = statfsSync(mount.dir);
  await writeFile(filler, Buffer.alloc(bavail * bsize - 96 * 1024));

  const sink = s3Sink({ bucket: 'bucket', prefix: 'full-disk/', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir, fsync: 'always' } });
  const warnings: SinkWarning[] = [];
  const receipts: Receipt[] = [];
  const durable: number[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('durable', (acks) => durable.push(...(acks as number[])));
  const full = new Promise<void>((resolve) =>
    sink.on('warning', (w: SinkWarning) => {
      warnings.push(w);
      if (w.code === 'S3SINK_SPOOL_FULL') resolve();
    }),
  );
  const writing = write(sink, 0, 3000); // about 650 KB of lines: more than the disk has
  await full;
  t.true(durable.length < 3000, `${durable.length} durable when the disk filled`);
  t.is(sink.context.full, 'disk-full', 'the sink says why input waits');
  await rm(filler);
  await writing;
  await sink.close();
  t.is(sink.context.full, null);

  t.deepEqual(await eventsIn(receipts), Array.from({ length: 3000 }, (_, n) => n), 'every event, once');
  t.is(durable.length, 3000);
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_SPOOL_FULL', 'S3SINK_SPOOL_ROOM']);
  t.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.seg')), []);
});

test('a spool at maxBytes while S3 is down: input waits (a warning says why), the spool stays near maxBytes, and all is delivered when S3 returns', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-max-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const MAX = 1024 * 1024;
  const sink = s3Sink({
    bucket: 'bucket',
    prefix: 'max-bytes/',
    s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint },
    clock: fixedClock(),
    spool: { dir, maxBytes: MAX },
    retry: { attempts: 2, baseMs: 20, capMs: 100 },
    requestTimeoutMs: 1000,
  });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  let peakSpooled = 0;
  const warned = (code: string) => new Promise<void>((resolve) => sink.on('warning', (w: SinkWarning) => w.code === code && resolve()));
  const atMax = Promise.all([warned('S3SINK_SPOOL_MAX'), warned('S3SINK_REDELIVER')]);
  const sampler = setInterval(() => (peakSpooled = Math.max(peakSpooled, sink.stats().spooledBytes)), 5);
  t.teardown(() => clearInterval(sampler));
  await env.proxy.down();
  const writing = write(sink, 0, 12_000); // about 2.6 MB of lines
  await atMax; // input waits, and uploads have failed and gone back to the spool
  t.is(sink.context.full, 'spool-max', 'the sink says why input waits');
  const spooledAtMax = sink.stats().spooledBytes;
  const deliveredWhileDown = receipts.length;
  await env.proxy.up();
  await writing;
  await sink.close();
  clearInterval(sampler);
  t.is(sink.context.full, null, 'no longer waiting once S3 took what the spool held');

  t.deepEqual(await eventsIn(receipts), Array.from({ length: 12_000 }, (_, n) => n), 'every event, once');
  t.true(spooledAtMax <= MAX + 64 * 1024, `${spooledAtMax} bytes spooled when input began to wait`);
  t.true(peakSpooled <= MAX + 64 * 1024, `the spool peaked at ${peakSpooled} bytes`);
  t.true(receipts.length > 1, 'batches were closed early to make room');
  t.is(deliveredWhileDown, 0);
});
