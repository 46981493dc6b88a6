import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt, type RetryInfo } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { noisyLine, prng } from './helpers/data.js';
import type { Fault } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';

const dice = prng(2026);
const injected = { slowDown: 0, reset: 0, stall: 0 };
let requests = 0;
/** Of every ten S3 requests: two answered 503 SlowDown, one cut off mid-body, one never answered. */
function fault(operation: string): Fault {
  if (operation === 'Other') return { kind: 'pass' };
  switch (requests++ % 10) {
    case 1:
    case 6:
      injected.slowDown += 1;
      return { kind: 'status', status: 503, code: 'SlowDown' };
    case 3:
      injected.reset += 1;
      return { kind: 'reset', afterBytes: Math.floor(dice() * 4096) };
    case 8:
      injected.stall += 1;
      return { kind: 'stall' };
    default:
      return { kind: 'pass' };
  }
}

const env = useLocalS3(test, ['bucket'], { fault });

test('through 503 SlowDown, connections reset mid-body and stalled requests, 20 000 events across destinations arrive exactly once', async (t) => {
  const sink = s3Sink({
    bucket: 'bucket',
    s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint },
    clock: fixedClock(),
    partSize: 5 * 1024 * 1024,
    gzipLevel: 1,
    retry: { attempts: 15, baseMs: 20, capMs: 400 },
    requestTimeoutMs: 1500,
  });
  const receipts: Receipt[] = [];
  const retries: RetryInfo[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('retry', (r: RetryInfo) => retries.push(r));
  const random = prng(77);
  const noise = Array.from({ length: 128 }, () => noisyLine(random, 750));
  const EVENTS = 20_000;
  // One destination large enough for a multipart upload (7.5 MB of noise), 30 small ones.
  function* records() {
    for (let n = 0; n < EVENTS; n++) {
      if (n % 2 === 0) yield { prefix: 'big/', payload: `big ${n} ${noise[n % 128]}` };
      else yield { prefix: `small/${n % 30}/`, payload: `small ${n}` };
    }
  }
  await pipeline(Readable.from(records()), sink);

  const seen = new Map<number, number>();
  for (const r of receipts) {
    for (const line of await env.s3.lines('bucket', r.key)) {
      const n = Number(line.split(' ')[1]);
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  t.is(seen.size, EVENTS, 'every event arrived');
  t.deepEqual([...seen.values()].filter((count) => count !== 1), [], 'none twice');
  t.is(sink.stats().eventsOut, EVENTS);
  t.true(injected.slowDown > 0 && injected.reset > 0 && injected.stall > 0, JSON.stringify(injected));
  t.is(sink.stats().retries, retries.length);
  t.true(retries.some((r) => r.code === 'SlowDown'));
  t.true(retries.some((r) => r.code === 'RequestTimeout'), 'stalled requests timed out and were retried');
  t.true(receipts.some((r) => r.parts > 1), 'the big destination went up in parts');
  t.true(retries.every((r) => r.key !== undefined && r.bucket === 'bucket'));
  t.true(retries.every((r) => r.delayMs >= 0 && r.delayMs < 400));
});
