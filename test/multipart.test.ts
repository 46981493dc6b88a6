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
