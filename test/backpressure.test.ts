import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt, type S3Sink } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], { bytesPerSecond: 8 * 1024 * 1024 });

const MiB = 1024 * 1024;
const TOTAL = 32 * MiB;
const BUDGET = 8 * MiB;

/** 1 KiB lines gzip cannot shrink (a 256 KiB pool, far beyond gzip's 32 KiB window), made on demand. */
function source(counter: { produced: number }): Readable {
  const random = prng(7);
  const pool = Array.from({ length: 256 }, () => Buffer.from(`${noisyLine(random, 1023)}\n`));
  let i = 0;
  return new Readable({
    read() {
      if (counter.produced >= TOTAL) {
        this.push(null);
        return;
      }
      const chunk = Buffer.concat(Array.from({ length: 64 }, () => pool[i++ % pool.length]!));
      counter.produced += chunk.length;
      this.push(chunk);
    },
  });
}

test('with S3 slow, the sink stops calling back, the source pauses, and buffered bytes stay within the budget', async (t) => {
  const sink: S3Sink = s3Sink({
    clock: fixedClock(),
    bucket: 'bucket',
    prefix: 'slow/',
    input: 'lines',
    s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint },
    partSize: 5 * MiB,
    maxBufferedBytes: BUDGET,
    gzipLevel: 1,
  });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  let drains = 0;
  sink.on('drain', () => drains++);
  const counter = { produced: 0 };
  let producedAtFirstPart = -1;
  let maxBuffered = 0;
  let maxInTransit = 0;
  const sample = setInterval(() => {
    const stats = sink.stats();
    maxBuffered = Math.max(maxBuffered, stats.bufferedBytes);
    maxInTransit = Math.max(maxInTransit, counter.produced - stats.bytesIn);
    if (producedAtFirstPart < 0 && env.proxy.log.some((l) => l.operation === 'UploadPart' && l.status === 200)) producedAtFirstPart = counter.produced;
  }, 10);
  await pipeline(source(counter), sink);
  clearInterval(sample);

  t.log({ drains, producedAtFirstPart, maxBuffered, maxInTransit, objects: receipts.length });
  t.true(drains > 0, 'sink.write() returned false and the source waited for drain');
  t.true(producedAtFirstPart > 0 && producedAtFirstPart < TOTAL / 2, `when the first part landed the source had made ${producedAtFirstPart} of ${TOTAL} bytes`);
  t.true(maxBuffered <= BUDGET, `bufferedBytes peaked at ${maxBuffered}`);
  t.true(sink.stats().peakBufferedBytes <= BUDGET, `peak ${sink.stats().peakBufferedBytes}`);
  t.true(maxInTransit <= 2 * MiB, `bytes between the source and window peaked at ${maxInTransit}`);
  const events = receipts.reduce((n, r) => n + r.events, 0);
  t.is(events, TOTAL / 1024);
  let bytes = 0;
  for (const r of receipts) bytes += (await env.s3.body('bucket', r.key)).length;
  t.is(bytes, TOTAL);
});
