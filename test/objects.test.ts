import test from 'ava';
import { s3Sink, type Receipt } from '../lib/index.js';
import { parseKey } from '../lib/key.js';
import { ManualClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket', 'other-bucket']);

const AT = Date.UTC(2019, 4, 25, 16, 14, 58, 250);
const HEX64 = '[0-9a-f]{64}';

test('keys are exactly [PREFIX]/YYYY/MM/DD/HH/YYYY-MM-DD-HH-MM-SS-IDENTIFIER.gz for prefixes a/, a and empty', async (t) => {
  const keys: string[] = [];
  for (const prefix of ['a/', 'a', '']) {
    const sink = s3Sink({ bucket: 'bucket', prefix, s3: env.s3.s3Config, clock: new ManualClock(AT) });
    sink.on('object', (r: Receipt) => keys.push(r.key));
    sink.write({ payload: { prefix } });
    await sink.close();
  }
  t.is(keys.length, 3);
  t.regex(keys[0]!, new RegExp(`^a/2019/05/25/16/2019-05-25-16-14-58-${HEX64}\\.gz$`));
  t.regex(keys[1]!, new RegExp(`^a/2019/05/25/16/2019-05-25-16-14-58-${HEX64}\\.gz$`));
  t.regex(keys[2]!, new RegExp(`^2019/05/25/16/2019-05-25-16-14-58-${HEX64}\\.gz$`));
  t.is(new Set(keys.map((k) => parseKey(k)?.identifier)).size, 3, 'identifiers are unique');
  const listed = await env.s3.keys('bucket');
  for (const key of keys) t.true(listed.includes(key));
  t.deepEqual(await env.s3.lines('bucket', keys[0]!), ['{"prefix":"a/"}']);
});

test('a record\'s prefix test/ and test write to the same object; folders and file name agree', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock: new ManualClock(AT) });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.write({ prefix: 'same/', payload: 'one' });
  sink.write({ prefix: 'same', payload: 'two' });
  sink.write({ prefix: '/same//', payload: 'three' });
  await sink.close();
  t.is(receipts.length, 1);
  const parsed = parseKey(receipts[0]!.key);
  t.is(parsed?.prefix, 'same');
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), ['one', 'two', 'three']);
});

test('interleaved destinations arrive in write order, byte for byte, one object per destination per window', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 10));
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const destinations = [
    { bucket: 'bucket', prefix: 'orders/' },
    { bucket: 'bucket', prefix: 'signups' },
    { bucket: 'other-bucket', prefix: 'orders/' },
  ];
  const expected = new Map<string, string[]>(); // "window|bucket|prefix" → lines
  const payloadOf = (i: number) => (i % 3 === 0 ? { i, text: 'ünïcödé ✓' } : i % 3 === 1 ? `line ${i}` : Buffer.from(`bytes ${i}`));
  const lineOf = (i: number) => (i % 3 === 0 ? JSON.stringify({ i, text: 'ünïcödé ✓' }) : i % 3 === 1 ? `line ${i}` : `bytes ${i}`);
  let written = 0;
  const writeSome = (windowIndex: number, from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const d = destinations[(i * 7) % 3]!;
      sink.write({ ...d, payload: payloadOf(i) });
      const id = `${windowIndex}|${d.bucket}|${d.prefix.replace(/\/$/, '')}`;
      expected.set(id, [...(expected.get(id) ?? []), lineOf(i)]);
      written += Buffer.byteLength(lineOf(i)) + 1;
    }
  };
  writeSome(0, 0, 300);
  await eventually(() => sink.stats().bytesIn === written, 'the first window\'s events to reach window');
  clock.advance(60_000); // crosses into the next minute: the first window's batches close
  writeSome(1, 300, 600);
  await sink.close();

  t.is(receipts.length, 6);
  const firstWindowEnd = Date.UTC(2026, 0, 1, 12, 1, 0);
  for (const r of receipts) {
    const parsed = parseKey(r.key)!;
    const windowIndex = parsed.time < firstWindowEnd ? 0 : 1;
    const lines = expected.get(`${windowIndex}|${r.bucket}|${parsed.prefix}`);
    t.truthy(lines, r.key);
    const body = await env.s3.body(r.bucket, r.key);
    t.deepEqual(body, Buffer.from(lines!.map((l) => `${l}\n`).join('')), `${r.bucket}/${r.key} byte for byte`);
    t.is(r.events, lines!.length);
    t.is(r.bytes, body.length);
    t.is(r.compressedBytes, (await env.s3.raw(r.bucket, r.key)).length);
  }
  t.deepEqual(sink.stats().objects, 6);
  t.is(sink.stats().eventsOut, 600);
});

test('a destination with no events in a window writes nothing', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 13, 0, 0));
  const sink = s3Sink({ bucket: 'bucket', prefix: 'quiet/', s3: env.s3.s3Config, clock });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.write({ payload: 'only event' });
  await eventually(() => sink.stats().bytesIn > 0, 'the event to reach window');
  clock.advance(5 * 60_000); // four empty windows pass
  await eventually(() => receipts.length === 1, 'the first object');
  sink.write({ payload: 'much later' });
  await sink.close();
  t.is(receipts.length, 2);
  t.deepEqual((await env.s3.keys('bucket', 'quiet/')).length, 2);
});
