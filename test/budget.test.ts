import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { s3Sink, type Receipt } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { gzipMembers, syncFlushes } from './helpers/gzip.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const run = promisify(execFile);

const MiB = 1024 * 1024;

test('a budget full of batches too small for a part closes the largest early instead of stalling; uploads stay capped', async (t) => {
  const DESTINATIONS = 100;
  const PER_DESTINATION = 40; // 40 × 1 KiB: ~4 MiB in all, against a 1 MiB budget
  const BUDGET = 1 * MiB;
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', s3: env.s3.s3Config, maxBufferedBytes: BUDGET, maxUploads: 3, gzipLevel: 1 });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  let maxUploads = 0;
  let maxBuffered = 0;
  sink.on('object', () => {
    maxUploads = Math.max(maxUploads, sink.stats().uploadsInFlight);
  });
  const sample = setInterval(() => {
    const stats = sink.stats();
    maxUploads = Math.max(maxUploads, stats.uploadsInFlight);
    maxBuffered = Math.max(maxBuffered, stats.bufferedBytes);
  }, 5);
  const random = prng(5);
  const noise = Array.from({ length: 300 }, () => noisyLine(random, 1000));
  const records = function* () {
    for (let round = 0; round < PER_DESTINATION; round++) {
      for (let d = 0; d < DESTINATIONS; d++) yield { prefix: `fan/${d}/`, payload: `${d} ${round} ${noise[(d * 7 + round) % 300]}` };
    }
  };
  await pipeline(Readable.from(records()), sink);
  clearInterval(sample);

  t.true(sink.stats().peakBufferedBytes <= BUDGET, `peak ${sink.stats().peakBufferedBytes}`);
  t.true(maxBuffered <= BUDGET);
  t.true(maxUploads <= 3, `uploads in flight peaked at ${maxUploads}`);
  t.true(receipts.length > DESTINATIONS, `${receipts.length} objects: some destinations were closed early`);
  // Every event arrived, in order within its destination.
  const byDestination = new Map<number, number[]>();
  for (const r of receipts.sort((a, b) => a.key.localeCompare(b.key))) {
    for (const line of await env.s3.lines('bucket', r.key)) {
      const [d, round] = line.split(' ').map(Number) as [number, number];
      byDestination.set(d, [...(byDestination.get(d) ?? []), round]);
    }
  }
  t.is(byDestination.size, DESTINATIONS);
  for (const [d, rounds] of byDestination) {
    if (rounds.length !== PER_DESTINATION) t.fail(`destination ${d}: ${rounds.length} events`);
  }
  t.is(sink.stats().eventsOut, DESTINATIONS * PER_DESTINATION);
});

test('a budget full of small batches of compressible lines compresses them into pieces instead of closing them: one object per destination, each one gzip member, every line in order', async (t) => {
  const DESTINATIONS = 100;
  const PER_DESTINATION = 400; // ~100-byte JSON lines: ~4 MiB in all against a 1 MiB budget, about a tenth of it once compressed
  const BUDGET = 1 * MiB;
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', s3: env.s3.s3Config, maxBufferedBytes: BUDGET });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const line = (d: number, round: number) => JSON.stringify({ d, round, level: 'info', msg: `request ${round} of tenant ${d} served`, ms: (d * round) % 97 });
  const records = function* () {
    for (let round = 0; round < PER_DESTINATION; round++) {
      for (let d = 0; d < DESTINATIONS; d++) yield { prefix: `members/${d}/`, payload: line(d, round) };
    }
  };
  await pipeline(Readable.from(records()), sink);

  t.true(sink.stats().peakBufferedBytes <= BUDGET, `peak ${sink.stats().peakBufferedBytes}`);
  t.is(receipts.length, DESTINATIONS, 'one object per destination: nothing was closed early');
  let multi = 0;
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-compact-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const zcat = await run('sh', ['-c', 'command -v zcat']).then(
    () => true,
    () => false,
  );
  for (const r of receipts) {
    const d = Number(/^members\/(\d+)\//.exec(r.key)?.[1]);
    const expected = Array.from({ length: PER_DESTINATION }, (_, round) => line(d, round));
    t.deepEqual(await env.s3.lines('bucket', r.key), expected, `destination ${d}: Node reads every line, in order`);
    const gz = await env.s3.raw('bucket', r.key);
    t.is(gzipMembers(gz).length, 1, `destination ${d}: one gzip member`);
    if (syncFlushes(gz) > 0) multi += 1;
    if (d % 25 === 0 && zcat) {
      const file = join(dir, `${d}.gz`);
      await writeFile(file, gz);
      const { stdout } = await run('zcat', [file], { encoding: 'buffer', maxBuffer: 16 * MiB });
      t.true(stdout.equals(Buffer.from(`${expected.join('\n')}\n`)), `destination ${d}: zcat reads every line`);
    }
  }
  t.true(multi > DESTINATIONS / 2, `${multi} objects of several pieces: the budget filled and lines were compacted`);
});
