import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClockError, OptionError, s3Sink, systemClock, UploadError } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

test('a failed upload rejects the pipeline with an error naming bucket, key and the S3 code', async (t) => {
  const sink = s3Sink({ clock: fixedClock(), bucket: 'no-such-bucket', prefix: 'x/', s3: env.s3.s3Config });
  const err = await t.throwsAsync(pipeline(Readable.from([{ payload: 'lost?' }]), sink), { instanceOf: UploadError });
  t.is(err?.code, 'ERR_S3SINK_UPLOAD');
  t.is(err?.bucket, 'no-such-bucket');
  t.regex(err?.key ?? '', /^x\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/[\d-]{19}-[0-9a-f]{64}\.gz$/);
  t.is(err?.s3Code, 'NoSuchBucket');
  t.regex(err?.message ?? '', /^upload of s3:\/\/no-such-bucket\/x\/.+\.gz failed: NoSuchBucket: /);
  t.is((err?.cause as { name?: string }).name, 'NoSuchBucket');
  t.is(sink.stats().retries, 0, 'NoSuchBucket is not retried');
  t.true(sink.destroyed);
});

test('close() rejects with the same error, and stats say nothing was written', async (t) => {
  const sink = s3Sink({ clock: fixedClock(), bucket: 'no-such-bucket', s3: env.s3.s3Config });
  sink.on('error', () => {});
  sink.write({ payload: 1 });
  await t.throwsAsync(sink.close(), { instanceOf: UploadError, message: /NoSuchBucket/ });
  t.is(sink.stats().objects, 0);
  t.is(sink.stats().eventsIn, 1);
});

test('s3Sink throws a bad option at once, before any stream exists', (t) => {
  t.throws(() => s3Sink({ clock: fixedClock(), bucket: 'bucket', windowMs: -5 }), { instanceOf: OptionError, message: 'option windowMs: got -5, expected an integer from 1 to 86400000' });
});

test('a clock that gives no time fails the sink with ClockError (no object named "Invalid DateTime")', async (t) => {
  const sink = s3Sink({ clock: { ...systemClock, now: () => Number.NaN }, bucket: 'bucket', prefix: 'bad-clock/', s3: env.s3.s3Config });
  await t.throwsAsync(pipeline(Readable.from([{ payload: 'a' }]), sink), { instanceOf: ClockError, code: 'ERR_S3SINK_CLOCK' });
  t.deepEqual(await env.s3.keys('bucket', 'bad-clock/'), []);
});

test('records of the wrong shape are rejected with a reason; the records around them arrive', async (t) => {
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'shapes/', s3: env.s3.s3Config });
  const rejected: string[] = [];
  sink.on('rejected', (r) => rejected.push(`${r.code}: ${r.reason}`));
  const keys: string[] = [];
  sink.on('object', (r) => keys.push(r.key));
  await pipeline(
    Readable.from([{ payload: 'first' }, 42, { bucket: 'Bad_Bucket', payload: 'x' }, { nopayload: true }, { payload: 10n }, 'a raw line', { payload: 'last' }]),
    sink,
  );
  // Shapes are checked by parse, buckets and payloads by keyBy: compare as a set.
  t.deepEqual(rejected.sort(), [
    'ERR_S3SINK_RECORD: record is number, expected { bucket?, prefix?, payload } or a string or Buffer',
    'ERR_S3SINK_RECORD: record has no payload field, expected { bucket?, prefix?, payload }',
    'ERR_S3SINK_BUCKET: record bucket "Bad_Bucket" is not an S3 bucket name: lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit',
    'ERR_S3SINK_PAYLOAD: payload cannot be written as JSON: Do not know how to serialize a BigInt',
  ].sort());
  t.deepEqual(await env.s3.lines('bucket', keys[0]!), ['first', 'a raw line', 'last']);
  t.is(sink.stats().rejected, 4);
});
