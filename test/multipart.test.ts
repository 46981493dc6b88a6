import test from 'ava';
import { S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';
import { startProxy, type Fault } from './helpers/proxy.js';
import { eventually } from './helpers/wait.js';

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
  sink.context.fence = {
    mayPublish: async (key) => {
      asked.push(key);
      return key.startsWith('fence/keep/');
    },
    holds: () => true,
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

test.serial("a fence's yes that lapses before the request leaves (a pause past the lease while the SDK computed the checksum and signature): that request is not sent and the fence is asked again; its no fences the batch, its yes writes it once", async (t) => {
  env.proxy.log.length = 0;
  const random = prng(11);
  const big: string[] = [];
  for (let bytes = 0; bytes < 7 * MiB; bytes += 1001) big.push(noisyLine(random, 1000));
  // A probe on the client, in the SDK's last step: it has run (the request is signed, its checksum computed) when the fence's last check does.
  const client = new S3Client({ ...env.s3.s3Config, endpoint: env.proxy.endpoint });
  t.teardown(() => client.destroy());
  let signed: string | undefined;
  client.middlewareStack.add((next) => async (args) => {
    signed = (args.request as { headers: Record<string, string> }).headers.authorization;
    return next(args);
  }, { step: 'deserialize', priority: 'low', name: 'probe' });
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'lapse/{to}/', client, partSize: 5 * MiB, gzipLevel: 1 });
  const asked = new Map<string, number>();
  const checked = new Map<string, number>();
  const what = (key: string) => key.split('/')[1]!;
  sink.context.fence = {
    // 'gone': yes, then (the lease having run out, the group rebalanced) no. The others: yes.
    mayPublish: async (key) => {
      asked.set(what(key), (asked.get(what(key)) ?? 0) + 1);
      return !(what(key) === 'gone' && asked.get('gone')! > 1);
    },
    // The first yes of every batch has lapsed by the time its request leaves.
    holds: (key) => {
      t.truthy(signed, 'checked after the signature');
      signed = undefined;
      checked.set(what(key), (checked.get(what(key)) ?? 0) + 1);
      return checked.get(what(key))! > 1;
    },
  };
  const fenced: string[] = [];
  sink.on('fenced', ({ key }) => fenced.push(what(key)));
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('warning', () => {}); // s3rver cannot abort (405): said as a warning
  async function* source() {
    yield { payload: { to: 'gone' } };
    yield { payload: { to: 'back' } };
    for (const line of big) yield { payload: { to: 'big', line } };
  }
  await pipeline(Readable.from(source()), sink);

  t.deepEqual(receipts.map((r) => what(r.key)).sort(), ['back', 'big']);
  t.deepEqual(fenced, ['gone']);
  t.deepEqual(Object.fromEntries(asked), { gone: 2, back: 2, big: 2 });
  t.deepEqual(Object.fromEntries(checked), { gone: 1, back: 2, big: 2 });
  const ops = (to: string) => env.proxy.log.filter((l) => l.url.includes(`/lapse/${to}/`)).map((l) => l.operation);
  t.deepEqual(ops('gone'), [], 'the lapsed request never left');
  t.deepEqual(ops('back'), ['PutObject'], 'one request: the lapsed one never left');
  t.is(ops('big').filter((o) => o === 'CompleteMultipartUpload').length, 1);
  t.deepEqual(await env.s3.lines('bucket', receipts.find((r) => what(r.key) === 'back')!.key), ['{"to":"back"}']);
});

test.serial("the sink's own client has a socket for every request the upload stage makes at once (maxUploads x queueSize): a request that passed the fence's last check is not queued in the HTTP agent, where it could wait past a rebalance before it leaves", async (t) => {
  const uploads = 64; // above the SDK's default agent (50 sockets)
  let answer = (_fault: Fault) => {};
  const answered = new Promise<Fault>((resolve) => (answer = resolve));
  // S3 holds every PutObject until each of them has arrived.
  const proxy = await startProxy(env.s3.port, { fault: (operation) => (operation === 'PutObject' ? { kind: 'later', fault: answered } : { kind: 'pass' }) });
  t.teardown(() => proxy.close());
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: 'sockets/{to}/', s3: { ...env.s3.s3Config, endpoint: proxy.endpoint }, maxUploads: uploads, queueSize: 1, gzipLevel: 1 });
  t.teardown(() => {
    answer({ kind: 'pass' });
    if (!sink.destroyed) sink.destroy();
  });
  let checked = 0;
  sink.context.fence = {
    mayPublish: async () => true,
    holds: () => {
      checked += 1;
      return true;
    },
  };
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const done = pipeline(Readable.from(Array.from({ length: uploads }, (_, i) => ({ payload: { to: `d${i}` } }))), sink);
  await eventually(() => checked === uploads, 'every PutObject passed the last check', 20_000);
  const arrived = () => proxy.log.filter((l) => l.operation === 'PutObject').length;
  await eventually(() => arrived() === uploads, 'every PutObject that passed the last check is at S3', 5_000).catch(() => {});
  t.is(arrived(), uploads, 'none of them waits for a socket');
  answer({ kind: 'pass' });
  await done;
  t.is(receipts.length, uploads);
});
