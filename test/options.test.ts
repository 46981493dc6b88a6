import test from 'ava';
import { OptionError } from '../lib/errors.js';
import { DEFAULTS, largestObjectFor, orphanAgeFloor, resolveOptions, type SinkOptions } from '../lib/options.js';

function optionError(t: import('ava').ExecutionContext, options: unknown, option: string, message: RegExp) {
  const err = t.throws(() => resolveOptions(options as SinkOptions), { instanceOf: OptionError });
  t.is(err?.code, 'ERR_S3SINK_OPTION');
  t.is(err?.option, option);
  t.regex(err?.message ?? '', message);
}

test('defaults are filled in and the result is frozen; the caller\'s object is not touched', (t) => {
  const given: SinkOptions = { bucket: 'my-bucket', prefix: '/events/' };
  const copy = structuredClone(given);
  const resolved = resolveOptions(given);
  t.deepEqual(given, copy);
  t.true(Object.isFrozen(resolved));
  t.is(resolved.prefix, 'events');
  t.is(resolved.windowMs, DEFAULTS.windowMs);
  t.is(resolved.partSize, 8 * 1024 * 1024);
  t.is(resolved.input, 'records');
  t.true(resolved.parallelGzip, 'compressed on several cores by default');
  t.false(resolveOptions({ parallelGzip: false }).parallelGzip);
  t.false(resolved.keepChunks, 'lines are copied out of a chunk unless the writer says it never changes one');
  t.true(resolveOptions({ bucket: 'bucket', input: 'lines', keepChunks: true }).keepChunks);
});

test('a bad option names itself, the value and what was expected', (t) => {
  optionError(t, { windowMs: 0 }, 'windowMs', /^option windowMs: got 0, expected an integer from 1 to 86400000$/);
  optionError(t, { windowMs: '60s' }, 'windowMs', /got "60s", expected an integer/);
  optionError(t, { partSize: 1024 }, 'partSize', /got 1024, expected an integer from 5242880/);
  optionError(t, { queueSize: 0.5 }, 'queueSize', /got 0.5/);
  optionError(t, { gzipLevel: 10 }, 'gzipLevel', /from 0 to 9/);
  optionError(t, { input: 'json' }, 'input', /got "json", expected 'records' or 'lines'/);
  optionError(t, { bucket: 'My_Bucket' }, 'bucket', /got "My_Bucket", expected an S3 bucket name \(lowercase letters/);
  optionError(t, { input: 'lines' }, 'bucket', /lines mode has no per-event bucket/);
  optionError(t, { prefix: 'app/{}/' }, 'prefix', /placeholder/);
  optionError(t, { prefix: 'a\nb' }, 'prefix', /expected a prefix without control characters, lone surrogates or "\." or "\.\." segments, of at most 920 bytes \(this one contains a control character \(U\+000A\)\)$/);
  optionError(t, { prefix: '../../etc/' }, 'prefix', /\(this one has a "\.\." segment\)$/);
  optionError(t, { deadLetterPrefix: './strays/' }, 'deadLetterPrefix', /\(this one has a "\." segment\)$/);
  optionError(t, { prefix: 'app/\ud800/' }, 'prefix', /\(this one contains a lone surrogate \(U\+D800\)\)$/);
  optionError(t, { deadLetterPrefix: '_unrouted\udc00/' }, 'deadLetterPrefix', /\(this one contains a lone surrogate \(U\+DC00\)\)$/);
  optionError(t, { prefix: 'app/\ud800{service}/' }, 'prefix', /its text outside the placeholders contains a lone surrogate \(U\+D800\)$/);
  optionError(t, { prefix: 'app/../{service}/' }, 'prefix', /expected a prefix or template: its text outside the placeholders has a "\.\." segment$/);
  optionError(t, { prefix: 'app/{kafka:key}/' }, 'prefix', /\{kafka:key\} is filled only by Kafka workers \(consumeKafka, s3-sink kafka\)$/);
  optionError(t, { s3: {}, client: { send() {} } }, 'client', /either client or s3/);
  optionError(t, { maxLineBytes: 2 * 1024 * 1024, maxBufferedBytes: 1024 * 1024 }, 'maxLineBytes', /fit in the memory budget/);
  optionError(t, { maxObjectBytes: 10, maxLineBytes: 10 }, 'maxLineBytes', /fit in an object/);
  optionError(t, { clock: { now: () => 0 } }, 'clock', /setTimeout/);
  optionError(t, { bucket: 'bucket', input: 'lines', keepChunks: 'yes' }, 'keepChunks', /got "yes", expected true or false$/);
  optionError(t, { keepChunks: true }, 'keepChunks', /expected false or nothing: it keeps the Buffers of lines mode, and records are not Buffers$/);
});

test('unset, maxLineBytes shrinks to fit a small budget or object size', (t) => {
  t.is(resolveOptions({ maxBufferedBytes: 1024 * 1024 }).maxLineBytes, 256 * 1024);
  t.is(resolveOptions({ maxObjectBytes: 100 }).maxLineBytes, 99);
  t.is(resolveOptions({}).maxLineBytes, 1024 * 1024);
});

test('a misspelt option is refused, naming the one that was meant', (t) => {
  optionError(t, { windowMS: 1000 }, 'windowMS', /did you mean windowMs\?/);
  optionError(t, { frobnicate: 1 }, 'frobnicate', /no such option; known: bucket/);
});

test('maxObjectBytes must keep an object within S3\'s 10 000 parts', (t) => {
  const partSize = 5 * 1024 * 1024;
  const largest = largestObjectFor(partSize);
  t.true(largest > 9_990 * partSize && largest < 10_000 * partSize);
  t.notThrows(() => resolveOptions({ partSize, maxObjectBytes: largest }));
  optionError(t, { partSize, maxObjectBytes: largest + 1 }, 'maxObjectBytes', /S3 allows 10000 parts/);
});

test('sweepOrphans is at least the longest an upload can be live: the window, the requests it may still need with every retry, and 10 minutes for clocks', (t) => {
  // Worked by hand: one request is 10 tries of 120 s plus the longest waits
  // between them (200, 400, ... 12 800 ms, then 20 s twice: 65.4 s); the 64 MiB
  // budget is at most 8 + 1 parts of 8 MiB, 4 at a time: 3 rounds, and the completion.
  const request = 10 * 120_000 + (200 + 400 + 800 + 1600 + 3200 + 6400 + 12_800 + 20_000 + 20_000);
  const minutes10 = 600_000;
  t.is(orphanAgeFloor(resolveOptions({})), 60_000 + 4 * request + minutes10);
  const hourWindow = 3_600_000 + 4 * request + minutes10;
  t.is(hourWindow, 9_261_600);
  // What aborted a sibling's live upload: 10 minutes with a window of an hour.
  optionError(t, { bucket: 'bkt', windowMs: 3_600_000, sweepOrphans: 600_000 }, 'sweepOrphans', /^option sweepOrphans: got 600000, expected at least 9261600 \(155m\): an upload of a sink with these settings can be live that long \(windowMs 3600000 \+ 4 rounds of requests of up to 1265400 ms each, retries included, \+ 10 min for clocks\)$/);
  optionError(t, { bucket: 'bkt', windowMs: 3_600_000, sweepOrphans: hourWindow - 1 }, 'sweepOrphans', /expected at least 9261600/);
  t.is(resolveOptions({ bucket: 'bkt', windowMs: 3_600_000, sweepOrphans: hourWindow }).sweepOrphans, hourWindow);
  // Shorter timeouts, fewer tries and a smaller budget make it shorter; it follows every one of them.
  const quick = { windowMs: 60_000, requestTimeoutMs: 10_000, retry: { attempts: 3, baseMs: 100, capMs: 1000 }, maxBufferedBytes: 16 * 1024 * 1024, partSize: 8 * 1024 * 1024, queueSize: 4 };
  t.is(orphanAgeFloor(resolveOptions(quick)), 60_000 + 2 * (3 * 10_000 + 100 + 200) + minutes10);
});

test('bucket names AWS reserves are refused: xn-- and sthree- prefixes, -s3alias and --ol-s3 suffixes', (t) => {
  for (const [bucket, problem] of [
    ['xn--logs', /not starting with xn-- \(reserved by AWS\)/],
    ['sthree-logs', /not starting with sthree-/],
    ['amzn-s3-demo-logs', /not starting with amzn-s3-demo-/],
    ['logs-s3alias', /not ending with -s3alias \(reserved by AWS\)/],
    ['logs--ol-s3', /not ending with --ol-s3/],
    ['logs.mrap', /not ending with \.mrap/],
    ['logs--x-s3', /not ending with --x-s3/],
    ['logs--table-s3', /not ending with --table-s3/],
  ] as const) {
    optionError(t, { bucket }, 'bucket', problem);
  }
  t.notThrows(() => resolveOptions({ bucket: 'logs-xn--s3alias-ok' }));
});

test('maxObjectBytes below 2 (a one-byte line and its newline) is reported as maxObjectBytes, not as the maxLineBytes derived from it', (t) => {
  optionError(t, { maxObjectBytes: 1 }, 'maxObjectBytes', /^option maxObjectBytes: got 1, expected an integer from 2 to /);
  t.is(resolveOptions({ maxObjectBytes: 2 }).maxLineBytes, 1);
});

test('object options: encryption, storage class, tags, headers and bucket owner become the params of every object; mistakes name the option', (t) => {
  t.deepEqual(resolveOptions({}).objectParams, { ContentType: 'application/gzip' });
  t.deepEqual(resolveOptions({ sseKmsKeyId: 'alias/logs', tags: { a: 'b c' }, acl: 'bucket-owner-full-control' }).objectParams, {
    ContentType: 'application/gzip',
    ACL: 'bucket-owner-full-control',
    ServerSideEncryption: 'aws:kms',
    SSEKMSKeyId: 'alias/logs',
    Tagging: 'a=b%20c',
  });
  t.true(Object.isFrozen(resolveOptions({ tags: { a: 'b' } }).objectParams));
  optionError(t, { sse: 'aws:kms:dsse', sseBucketKey: true }, 'sseBucketKey', /S3 Bucket Keys are for SSE-KMS; sse is 'aws:kms:dsse'/);
  optionError(t, { tags: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v'])) }, 'tags', /at most 10 tags \(S3's limit per object\); got 11/);
  optionError(t, { tags: { a: 'b\nc' } }, 'tags', /letters, digits, spaces/);
  optionError(t, { tags: ['a=b'] }, 'tags', /an object of tag keys and values/);
  optionError(t, { contentType: 'text/plain\r\nX-Evil: 1' }, 'contentType', /a header value: 1 to 255 printable ASCII characters/);
  optionError(t, { storageClass: 'standard' }, 'storageClass', /a storage class: STANDARD,/);
  optionError(t, { expectedBucketOwner: 123456789012 }, 'expectedBucketOwner', /a 12-digit AWS account id/);
});
