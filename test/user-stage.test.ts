import test from 'ava';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { composeSink, gzip, join, keyBy, parse, sinkContext, spool, upload, window, type LinesPiece, type Receipt } from '../lib/index.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const MiB = 1024 * 1024;

/** A stage of the user's after window: keeps the pieces `keep` says yes to, and passes every batch end. */
function filterPieces(keep: (piece: LinesPiece & { lines: unknown[] }, n: number) => boolean): Transform {
  let n = 0;
  return new Transform({
    objectMode: true,
    transform(pieces: LinesPiece[], _encoding: BufferEncoding, callback: TransformCallback) {
      callback(null, pieces.filter((p) => 'end' in p || keep(p as LinesPiece & { lines: unknown[] }, n++)));
    },
  });
}

/** One that holds every data piece until its own end, passing the batch ends at once. */
function holdPieces(): Transform {
  const held: LinesPiece[] = [];
  return new Transform({
    objectMode: true,
    transform(pieces: LinesPiece[], _encoding: BufferEncoding, callback: TransformCallback) {
      held.push(...pieces.filter((p) => !('end' in p)));
      callback(null, pieces.filter((p) => 'end' in p));
    },
    flush(callback: TransformCallback) {
      callback(null, held.length > 0 ? held : undefined);
    },
  });
}

async function run(t: import('ava').ExecutionContext, prefix: string, stage: Transform) {
  const ctx = sinkContext({ bucket: 'bucket', prefix, s3: env.s3.s3Config, maxBufferedBytes: 2 * MiB, partSize: 5 * MiB });
  const receipts: Receipt[] = [];
  ctx.on('object', (r) => receipts.push(r));
  const sink = composeSink(ctx, [parse(ctx), keyBy(ctx), window(ctx), stage, join(), spool(ctx), gzip(ctx), upload(ctx)]);
  const records = (function* () {
    for (let n = 0; n < 40_000; n++) yield { prefix: `${prefix}${n % 20}/`, payload: { n, pad: 'u'.repeat(150) } };
  })();
  await pipeline(Readable.from(records), sink);
  t.is(ctx.stats().bufferedBytes, 0, 'every charge settled');
  const seen: number[] = [];
  for (const r of receipts) {
    const lines = await env.s3.lines('bucket', r.key);
    t.true(lines.length > 0, 'no empty object');
    for (const line of lines) seen.push((JSON.parse(line) as { n: number }).n);
  }
  return { receipts, seen };
}

test('a stage after window that drops pieces (a whole destination and half of the rest): 8 times the budget goes through, charges settle, no empty objects', async (t) => {
  const { seen } = await run(t, 'drop/', filterPieces((piece, n) => !piece.batch.destination.prefix.endsWith('/0') && n % 2 === 0));
  t.true(seen.length > 0);
  t.false(seen.some((n) => n % 20 === 0), 'the dropped destination wrote nothing');
  t.is(new Set(seen).size, seen.length, 'nothing twice');
});

test('a stage after window that holds its pieces until its end, passing the ends first: no hang, charges settle, every event delivered once', async (t) => {
  const { seen } = await run(t, 'hold/', holdPieces());
  t.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 40_000 }, (_, n) => n));
});
