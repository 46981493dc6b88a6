import test from 'ava';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], {});

const MiB = 1024 * 1024;

test.serial('a batch over 5 MiB compressed goes up in several parts while the window is open, and arrives intact', async (t) => {
  env.proxy.log.length = 0;
  const random = prng(42);
  const lines: string[] = [];
  let bytes = 0;
  while (bytes < 13 * MiB) {
    const line = noisyLine(random, 1000);
    lines.push(line);
    bytes += line.length + 1;
  }
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'big/', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, partSize: 5 * MiB, gzipLevel: 1 });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  let partsBeforeEnd = 0;
  async function* source() {
    for (let i = 0; i < lines.length; i += 100) yield* lines.slice(i, i + 100).map((payload) => ({ payload }));
    // Every event is in; the window has not closed: parts must already be going up.
    const deadline = Date.now() + 20_000;
    while (env.proxy.log.filter((l) => l.operation === 'UploadPart' && l.status === 200).length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    partsBeforeEnd = env.proxy.log.filter((l) => l.operation === 'UploadPart' && l.status === 200).length;
  }
  await pipeline(Readable.from(source()), sink);

  t.true(partsBeforeEnd >= 1, 'a part was uploaded before the batch closed');
  t.is(receipts.length, 1);
  const receipt = receipts[0]!;
  t.true(receipt.compressedBytes > 5 * MiB, `compressed ${receipt.compressedBytes}`);
  t.is(receipt.parts, Math.ceil(receipt.compressedBytes / (5 * MiB)));
  const ops = env.proxy.log.map((l) => l.operation);
  t.is(ops.filter((o) => o === 'CreateMultipartUpload').length, 1);
  t.is(ops.filter((o) => o === 'UploadPart').length, receipt.parts);
  t.is(ops.filter((o) => o === 'CompleteMultipartUpload').length, 1);
  t.is(ops.filter((o) => o === 'PutObject').length, 0);
  const body = await env.s3.body('bucket', receipt.key);
  t.is(body.length, bytes);
  t.true(body.equals(Buffer.from(lines.join('\n') + '\n')), 'the object is the lines, in order');
});

test.serial('a tiny batch goes up as one PutObject', async (t) => {
  env.proxy.log.length = 0;
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'tiny/', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint } });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.write({ payload: { hello: 'world' } });
  await sink.close();
  t.deepEqual(
    env.proxy.log.map((l) => [l.operation, l.status]),
    [['PutObject', 200]],
  );
  t.is(receipts[0]?.parts, 1);
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), ['{"hello":"world"}']);
});

test.serial("a fenced batch (the context's fence says no: a Kafka worker that lost its partition) is not published: its multipart upload is aborted at CompleteMultipartUpload, a small one never PutObject; 'fenced' says so, the other batches are written", async (t) => {
  env.proxy.log.length = 0;
  const random = prng(7);
  const big: string[] = [];
  for (let bytes = 0; bytes < 13 * MiB; bytes += 1001) big.push(noisyLine(random, 1000));
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'fence/{to}/', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, partSize: 5 * MiB, gzipLevel: 1, retry: { attempts: 3, baseMs: 10, capMs: 10 } });
  const asked: string[] = [];
  sink.context.fence = async (key) => {
    asked.push(key);
    return key.startsWith('fence/keep/');
  };
  const fenced: { key: string; events: number }[] = [];
  sink.on('fenced', ({ key, events }) => fenced.push({ key, events }));
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('warning', () => {}); // s3rver cannot abort (405): said as a warning
  async function* source() {
    yield { payload: { to: 'keep', n: 1 } };
    yield { payload: { to: 'small', n: 2 } };
    for (const line of big) yield { payload: { to: 'big', line } };
  }
  await pipeline(Readable.from(source()), sink);

  t.deepEqual(receipts.map((r) => r.key.split('/')[1]), ['keep']);
  t.deepEqual(fenced.map((f) => [f.key.split('/')[1], f.events]).sort(), [['big', big.length], ['small', 1]]);
  t.is(sink.stats().fenced, 2);
  t.is(sink.stats().objects, 1);
  const ops = (what: string) => env.proxy.log.filter((l) => l.url.includes(`/fence/${what}/`)).map((l) => l.operation);
  t.true(ops('big').filter((o) => o === 'UploadPart').length >= 2, 'its parts went up');
  t.false(ops('big').includes('CompleteMultipartUpload'));
  t.true(ops('big').includes('AbortMultipartUpload'));
  t.deepEqual(ops('small'), []);
  t.is(asked.filter((k) => k.startsWith('fence/big/')).length, 1, 'asked once: a no is not retried');
  await t.throwsAsync(env.s3.body('bucket', fenced[0]!.key));
});
