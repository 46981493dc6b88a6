import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt, type Rejection, type Unrouted } from '../lib/index.js';
import { parseKey } from '../lib/key.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

async function run(input: Readable, options: Parameters<typeof s3Sink>[0]) {
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock: fixedClock(), ...options });
  const receipts: Receipt[] = [];
  const rejected: Rejection[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('rejected', (r: Rejection) => rejected.push(r));
  await pipeline(input, sink);
  const byPrefix = new Map<string, string[]>();
  for (const r of receipts) byPrefix.set(parseKey(r.key)!.prefix, await env.s3.lines('bucket', r.key));
  return { sink, byPrefix, rejected };
}

test('lines whose templated prefix cannot be filled go to the dead-letter prefix, unchanged and counted; the good lines around them arrive', async (t) => {
  const lines = [
    '{"app":"shop","n":1}',
    'not json at all',
    '{"n":2,"note":"no app field"}',
    '{"app":"","n":3}',
    '{"app":"../../etc","n":4}',
    '{"app":"evil\\u0007bell","n":5}',
    '{"app":{"nested":true},"n":6}',
    '["an","array"]',
    '{"app":"shop","n":7}',
    '{"app":"blog","n":8}',
  ];
  const { byPrefix, sink } = await run(Readable.from([Buffer.from(`${lines.join('\n')}\n`)]), { input: 'lines', prefix: 'apps/{app}/', deadLetterPrefix: 'strays/' });
  t.deepEqual(byPrefix.get('apps/shop'), [lines[0], lines[8]]);
  t.deepEqual(byPrefix.get('apps/blog'), [lines[9]]);
  t.deepEqual(byPrefix.get('strays'), lines.slice(1, 8));
  t.is(sink.stats().unrouted, 7);
  t.is(sink.stats().rejected, 0);
  t.is(byPrefix.size, 3);
});

test('payloads with no JSON form (BigInt, circular) are rejected with the reason; the records around them arrive', async (t) => {
  const circular: Record<string, unknown> = { name: 'loop' };
  circular.self = circular;
  const { byPrefix, rejected } = await run(Readable.from([{ payload: 'before' }, { payload: { big: 2n ** 70n } }, { payload: circular }, { payload: 'after' }]), { prefix: 'json/' });
  t.deepEqual(byPrefix.get('json'), ['before', 'after']);
  t.deepEqual(rejected.map((r) => r.code), ['ERR_S3SINK_PAYLOAD', 'ERR_S3SINK_PAYLOAD']);
  t.regex(rejected[0]!.reason, /BigInt/);
  t.regex(rejected[1]!.reason, /circular/i);
});

test('a record larger than maxLineBytes is rejected with its first bytes; the records around it arrive', async (t) => {
  const { byPrefix, rejected } = await run(Readable.from([{ payload: 'small' }, { payload: { blob: 'x'.repeat(5000) } }, { payload: 'also small' }]), { prefix: 'sizes/', maxLineBytes: 1000 });
  t.deepEqual(byPrefix.get('sizes'), ['small', 'also small']);
  t.is(rejected[0]?.code, 'ERR_S3SINK_LINE_TOO_LONG');
  t.regex(rejected[0]!.reason, /event of 5011 bytes is longer than maxLineBytes \(1000\)/);
  t.is(rejected[0]?.head, `{"blob":"${'x'.repeat(55)}`);
});

test('records with no bucket anywhere are rejected, not thrown', async (t) => {
  const sink = s3Sink({ s3: env.s3.s3Config, clock: fixedClock() });
  const rejected: Rejection[] = [];
  const receipts: Receipt[] = [];
  sink.on('rejected', (r: Rejection) => rejected.push(r));
  sink.on('object', (r: Receipt) => receipts.push(r));
  await pipeline(Readable.from([{ payload: 'nowhere to go' }, { bucket: 'bucket', prefix: 'named/', payload: 'has a bucket' }]), sink);
  t.deepEqual(rejected.map((r) => r.reason), ['record has no bucket and the sink has no default bucket option']);
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), ['has a bucket']);
});

test('a record prefix with a "." or ".." segment or a control character is rejected, naming what is wrong; the records around it arrive', async (t) => {
  const { byPrefix, rejected, sink } = await run(
    Readable.from([
      { prefix: 'safe/', payload: 'before' },
      { prefix: '../../etc/', payload: 'climbs out' },
      { prefix: './x/', payload: 'dot' },
      { prefix: 'a/\u0007/', payload: 'bell' },
      { prefix: 'safe/', payload: 'after' },
      { prefix: 'v1..2/', payload: 'dots inside a name are fine' },
    ]),
    {},
  );
  t.deepEqual(byPrefix.get('safe'), ['before', 'after']);
  t.deepEqual(byPrefix.get('v1..2'), ['dots inside a name are fine']);
  t.deepEqual(
    rejected.map((r) => [r.code, r.reason, r.head]),
    [
      ['ERR_S3SINK_RECORD', 'record prefix "../../etc/" has a ".." segment', 'climbs out'],
      ['ERR_S3SINK_RECORD', 'record prefix "./x/" has a "." segment', 'dot'],
      ['ERR_S3SINK_RECORD', 'record prefix "a/\\u0007/" contains a control character (U+0007)', 'bell'],
    ],
  );
  t.is(sink.stats().rejected, 3);
  t.is(byPrefix.size, 2);
});

test('a lone surrogate in a templated field sends the line to the dead-letter prefix; in a record prefix, the record is rejected; the events around them arrive', async (t) => {
  // What failed the whole run with "URIError: URI malformed" (0 of 2001 delivered).
  const lone = ['{"service":"\\ud800"}', '{"service":"api\\udc00x","n":1}'];
  const good = Array.from({ length: 2000 }, (_, n) => JSON.stringify({ service: 'api', n }));
  const input = Buffer.from(`${[lone[0], ...good.slice(0, 1000), lone[1], ...good.slice(1000)].join('\n')}\n`);
  const lines = await run(Readable.from([input]), { input: 'lines', prefix: 'app/{service}/' });
  t.deepEqual(lines.byPrefix.get('app/api'), good);
  t.deepEqual(lines.byPrefix.get('_unrouted'), lone, 'unchanged, byte for byte');
  t.is(lines.sink.stats().unrouted, 2);
  t.is(lines.sink.stats().eventsOut, 2002);

  const records = await run(
    Readable.from([
      { payload: { service: 'web', n: 1 } },
      { payload: { service: '\ud800', n: 2 } },
      { prefix: 'own/\udbff/', payload: 'own prefix' },
      { payload: { service: 'web', n: 3 } },
    ]),
    { prefix: 'rec/{service}/' },
  );
  t.deepEqual(records.byPrefix.get('rec/web'), ['{"service":"web","n":1}', '{"service":"web","n":3}']);
  t.deepEqual(records.byPrefix.get('_unrouted'), ['{"service":"\\ud800","n":2}']);
  t.deepEqual(records.rejected.map((r) => [r.code, r.reason]), [['ERR_S3SINK_RECORD', 'record prefix "own/\\udbff/" contains a lone surrogate (U+DBFF)']]);
});

test("an unrouted event that carries an ack is said in an 'unrouted' event (its ack, why, and where it went), and its ack still comes back delivered", async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'acks/{app}/', deadLetterPrefix: 'acks-strays/', s3: env.s3.s3Config, clock: fixedClock() });
  const unrouted: Unrouted[] = [];
  const delivered: unknown[] = [];
  sink.on('unrouted', (u: Unrouted) => unrouted.push(u));
  sink.on('delivered', (d) => delivered.push(...d.acks));
  sink.write({ payload: { app: 'shop' }, ack: 'a' });
  sink.write({ payload: 'not json', ack: 'b' });
  sink.write({ payload: { app: '..' }, ack: 'c' });
  sink.write({ payload: { n: 1 } }); // no ack: counted, not said
  await sink.close();
  t.deepEqual(
    unrouted.map((u) => [u.ack, u.prefix]),
    [
      ['b', 'acks-strays'],
      ['c', 'acks-strays'],
    ],
  );
  t.regex(unrouted[0]!.reason, /JSON/);
  t.regex(unrouted[1]!.reason, /"\.\."/);
  t.is(sink.stats().unrouted, 3);
  t.deepEqual([...delivered].sort(), ['a', 'b', 'c']);
});
