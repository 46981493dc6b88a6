import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

test('2 000 destinations × 25 events under a 16 MiB budget: all 50 000 arrive, and buffered bytes never pass the budget', async (t) => {
  const DESTINATIONS = 2000;
  const EVENTS = 25;
  const BUDGET = 16 * 1024 * 1024;
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, maxBufferedBytes: BUDGET, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  let maxBuffered = 0;
  const sample = setInterval(() => (maxBuffered = Math.max(maxBuffered, sink.stats().bufferedBytes)), 5);
  const before = process.memoryUsage().rss;
  let maxRss = before;
  const rss = setInterval(() => (maxRss = Math.max(maxRss, process.memoryUsage().rss)), 50);
  function* records() {
    for (let round = 0; round < EVENTS; round++) {
      for (let d = 0; d < DESTINATIONS; d++) yield { prefix: `tenant-${d}/`, payload: { d, round, msg: 'an event of a tenant among two thousand' } };
    }
  }
  await pipeline(Readable.from(records()), sink);
  clearInterval(sample);
  clearInterval(rss);
  t.log({ objects: receipts.length, maxBuffered, rssGrowthMiB: Math.round((maxRss - before) / 1024 / 1024) });

  t.true(maxBuffered <= BUDGET && sink.stats().peakBufferedBytes <= BUDGET);
  t.is(receipts.length, DESTINATIONS, 'one object per destination: the budget was never full');
  t.is(receipts.reduce((n, r) => n + r.events, 0), DESTINATIONS * EVENTS);
  // Spot-check objects byte for byte (all 2 000 downloads would double the test's time).
  for (const r of receipts.filter((_, i) => i % 97 === 0)) {
    const d = Number(/^tenant-(\d+)\//.exec(r.key)?.[1]);
    const expected = Array.from({ length: EVENTS }, (_, round) => JSON.stringify({ d, round, msg: 'an event of a tenant among two thousand' }));
    t.deepEqual(await env.s3.lines('bucket', r.key), expected);
  }
  t.is(new Set(receipts.map((r) => r.key.split('/')[0])).size, DESTINATIONS);
});
