import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { s3Sink, type DeadLetter, type Receipt, type SinkWarning } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { noisyLine, prng } from './helpers/data.js';
import { failingClient } from './helpers/failing-client.js';
import { useLocalS3 } from './helpers/s3.js';

// The proxy (used by one test) is slow, and refuses the second part of uploads under slow-refused/.
const env = useLocalS3(test, ['bucket'], {
  bytesPerSecond: 4 * 1024 * 1024,
  fault: (operation, request) =>
    operation === 'UploadPart' && request.url?.includes('/slow-refused/') && request.url.includes('partNumber=2') ? { kind: 'status', status: 403, code: 'AccessDenied' } : { kind: 'pass' },
});
const zcat = (path: string) => promisify(execFile)('zcat', [path], { maxBuffer: 64 * 1024 * 1024 }).then((r) => r.stdout);

async function tempDir(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-dead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('NoSuchBucket with deadLetter: the batch is on disk, complete, readable with zcat, with a sidecar; the other destinations go on', async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'no-such-bucket', prefix: 'lost/', s3: env.s3.s3Config, deadLetter: dir, clock: fixedClock() });
  const letters: DeadLetter[] = [];
  const receipts: Receipt[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  sink.on('object', (r: Receipt) => receipts.push(r));
  const records = Array.from({ length: 500 }, (_, n) => (n % 5 === 0 ? { bucket: 'bucket', prefix: 'fine/', payload: `fine ${n}` } : { payload: { n, text: 'kept on disk' } }));
  await pipeline(Readable.from(records), sink);
  t.is(sink.stats().retries, 0, 'NoSuchBucket is not retried');

  t.is(letters.length, 1);
  const letter = letters[0]!;
  t.is(letter.bucket, 'no-such-bucket');
  t.is(letter.code, 'NoSuchBucket');
  t.regex(letter.key, /^lost\/2026\/01\/01\/12\/2026-01-01-12-00-30-[0-9a-f]{64}\.gz$/);
  t.is(letter.path, join(dir, 'no-such-bucket', ...letter.key.split('/')));
  t.is(letter.events, 400);
  const expected = records.filter((r) => r.bucket === undefined).map((r) => `${JSON.stringify(r.payload)}\n`).join('');
  t.is(await zcat(letter.path!), expected);
  t.is((await stat(letter.path!)).size, letter.compressedBytes);
  const sidecar = JSON.parse(await readFile(`${letter.path}.json`, 'utf8')) as DeadLetter;
  t.is(sidecar.bucket, 'no-such-bucket');
  t.is(sidecar.key, letter.key);
  t.regex(sidecar.error, /^upload of s3:\/\/no-such-bucket\/lost\/.+ failed: NoSuchBucket: /);
  t.is(sidecar.time, '2026-01-01T12:00:30.000Z');
  t.deepEqual(await readdir(join(dir, '.spool')), [], 'no copy left in the spool');
  t.is(receipts.length, 1);
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), records.filter((r) => r.bucket).map((r) => r.payload));
  t.is(sink.stats().deadLettered, 1);
  t.is(sink.stats().deadLetteredEvents, 400);
});

test('a multipart upload refused at its second part: AbortMultipartUpload is sent and the whole batch is a dead letter', async (t) => {
  const dir = await tempDir(t);
  const { client, sent } = failingClient(env.s3.s3Config, (c) => c.constructor.name === 'UploadPartCommand' && c.input.PartNumber === 2);
  t.teardown(() => client.destroy());
  const sink = s3Sink({ bucket: 'bucket', prefix: 'half/', client, partSize: 5 * 1024 * 1024, gzipLevel: 1, deadLetter: dir, clock: fixedClock() });
  const letters: DeadLetter[] = [];
  const warnings: SinkWarning[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  const random = prng(8);
  const noise = Array.from({ length: 64 }, () => noisyLine(random, 1000));
  const lines = Array.from({ length: 12_000 }, (_, i) => `${i} ${noise[i % 64]}`);
  await pipeline(Readable.from(lines.map((payload) => ({ payload }))), sink);

  t.is(letters.length, 1);
  t.is(letters[0]!.code, 'AccessDenied');
  t.true(letters[0]!.compressedBytes > 5 * 1024 * 1024, 'more than one part of bytes: part 1 went up, part 2 was refused');
  t.is(await zcat(letters[0]!.path!), `${lines.join('\n')}\n`);
  t.true(sent.includes('AbortMultipartUpload'), sent.join(','));
  t.deepEqual(warnings.map((w) => w.code), ['S3SINK_NO_ABORT'], 's3rver lacks AbortMultipartUpload: said once');
});

test('without deadLetter, a refused UploadPart fails the sink naming bucket and key, aborts the upload, and the process exits by itself', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/part-failure-child.ts', import.meta.url)), env.s3.endpoint], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk));
  const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timeout);
  t.is(signal, null, 'exited by itself');
  t.is(code, 0);
  const report = JSON.parse(out.trim().split('\n').pop() ?? '{}');
  t.true(report.isUploadError);
  t.is(report.bucket, 'bucket');
  t.regex(report.key, /^refused\/\d{4}\//);
  t.is(report.s3Code, 'AccessDenied');
  t.regex(report.message, /^upload of s3:\/\/bucket\/refused\/\S+\.gz failed: AccessDenied: Access Denied$/);
  t.true(report.sent.includes('CreateMultipartUpload'));
  t.true(report.sent.includes('AbortMultipartUpload'), report.sent.join(','));
  t.false(report.sent.includes('CompleteMultipartUpload'));
  t.deepEqual(report.resources, []);
});

test('S3 slower than the input and a part refused (403) mid-upload, with deadLetter: no hang; the batch is a dead letter and the sink ends', async (t) => {
  t.timeout(60_000);
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'slow-refused/', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, partSize: 5 * 1024 * 1024, gzipLevel: 1, deadLetter: dir, clock: fixedClock() });
  const letters: DeadLetter[] = [];
  sink.on('dead-letter', (l: DeadLetter) => letters.push(l));
  sink.on('warning', () => {});
  const random = prng(12);
  const noise = Array.from({ length: 64 }, () => noisyLine(random, 1000));
  const lines = Array.from({ length: 16_000 }, (_, i) => `${i} ${noise[i % 64]}`);
  await pipeline(Readable.from(lines.map((payload) => ({ payload }))), sink);
  t.is(letters.length, 1);
  t.is(letters[0]!.code, 'AccessDenied');
  t.is(await zcat(letters[0]!.path!), `${lines.join('\n')}\n`);
});

test('the dead-letter directory removed mid-run: no crash; it is made again and every event is delivered', async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, deadLetter: dir, clock: fixedClock() });
  const warnings: SinkWarning[] = [];
  const receipts: Receipt[] = [];
  sink.on('warning', (w: SinkWarning) => warnings.push(w));
  sink.on('object', (r: Receipt) => receipts.push(r));
  for (let n = 0; n < 100; n++) sink.write({ prefix: 'before/', payload: { n } });
  await new Promise((resolve) => setImmediate(resolve));
  await rm(dir, { recursive: true, force: true });
  for (let n = 100; n < 200; n++) sink.write({ prefix: 'after/', payload: { n } });
  await sink.close();
  const seen: number[] = [];
  for (const r of receipts) for (const line of await env.s3.lines('bucket', r.key)) seen.push((JSON.parse(line) as { n: number }).n);
  t.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 200 }, (_, n) => n));
  t.true(warnings.some((w) => w.code === 'S3SINK_SPOOL_DIR_GONE'), warnings.map((w) => w.code).join());
});
