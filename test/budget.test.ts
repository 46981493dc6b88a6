import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

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
