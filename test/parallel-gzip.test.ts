import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { s3Sink, type Receipt } from '../lib/index.js';
import { COMPRESSOR_BYTES, PARALLEL_PIECES, pieceSlots } from '../lib/ledger.js';
import { fixedClock, ManualClock } from './helpers/clock.js';
import { logLine } from './helpers/data.js';
import { gzipMembers as members, syncFlushes } from './helpers/gzip.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const run = promisify(execFile);

async function available(command: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

test('by default (parallelGzip), a hot destination is compressed in pieces on several threads and written as ONE gzip member, which zcat, Python (even zlib.decompress, which stops after a member) and Java read as the original lines', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'members/', s3: env.s3.s3Config, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const lines = Array.from({ length: 60_000 }, (_, i) => logLine(i));
  const expected = Buffer.from(`${lines.join('\n')}\n`);
  await pipeline(Readable.from(lines.map((payload) => ({ payload }))), sink);
  t.is(receipts.length, 1);
  const gz = await env.s3.raw('bucket', receipts[0]!.key);
  t.is(members(gz).length, 1);
  t.true(syncFlushes(gz) >= Math.floor(expected.length / (1024 * 1024)), `${syncFlushes(gz)} pieces for ${expected.length} bytes`);
  t.true((await env.s3.body('bucket', receipts[0]!.key)).equals(expected), 'Node reads it');

  const dir = await mkdtemp(join(tmpdir(), 's3-sink-members-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'object.gz');
  await writeFile(file, gz);
  const readers: [string, string, string[]][] = [
    ['zcat', 'zcat', [file]],
    ['python3', 'python3', ['-c', 'import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())', file]],
    ['python3 zlib', 'python3', ['-c', 'import zlib, sys; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1], "rb").read(), 31))', file]],
    ['java', 'java', [fileURLToPath(new URL('./fixtures/Gunzip.java', import.meta.url)), file]],
  ];
  for (const [name, command, args] of readers) {
    if (!(await available(command))) {
      t.log(`${name} is not installed here: not checked`);
      continue;
    }
    const { stdout } = await run(command, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    t.true(stdout.equals(expected), `${name} reads every line`);
  }
});

test('with parallelGzip: false, an object is one gzip member of one stream', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'single/', s3: env.s3.s3Config, parallelGzip: false, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  await pipeline(Readable.from(Array.from({ length: 30_000 }, (_, i) => ({ payload: logLine(i) }))), sink);
  const gz = await env.s3.raw('bucket', receipts[0]!.key);
  t.is(members(gz).length, 1);
  t.is(syncFlushes(gz), 0, 'one stream, never flushed');
});

// Serial (AVA runs serial tests first, alone): it counts every deflateRaw call of the process.
test.serial('many hot destinations at once share the sink cap on pieces in flight (never more than it, whatever the number of destinations), and each object is still one gzip member of several pieces', async (t) => {
  const DESTINATIONS = 12;
  const PER_DESTINATION = 30_000; // ~3.3 MiB of lines each: three or four pieces
  const BLOCK = 500; // lines of one destination in a row: every batch grows (and cuts pieces) at the same time as the others
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const line = (d: number, i: number) => logLine(i, `svc${d}`);
  const records = function* () {
    for (let from = 0; from < PER_DESTINATION; from += BLOCK) {
      for (let d = 0; d < DESTINATIONS; d++) {
        yield Array.from({ length: BLOCK }, (_, k) => ({ prefix: `hot/${d}/`, payload: line(d, from + k) }));
      }
    }
  };
  // Counted apart from the sink's own counter: pieces given to zlib and not yet back (a piece is raw deflate ended by a sync flush, written in one go: compressOnce).
  const proto = zlib.DeflateRaw.prototype as unknown as { _transform: Transform['_transform'] };
  const transform = proto._transform;
  let inZlib = 0;
  let mostInZlib = 0;
  proto._transform = function (this: { _finishFlushFlag?: number }, chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    const piece = this._finishFlushFlag === zlib.constants.Z_SYNC_FLUSH;
    if (piece) mostInZlib = Math.max(mostInZlib, ++inZlib);
    transform.call(this, chunk, encoding, (err?: Error | null, data?: unknown) => {
      if (piece) inZlib -= 1;
      callback(err, data);
    });
  };
  t.teardown(() => (proto._transform = transform));
  await pipeline(Readable.from(records()).flatMap((block) => block), sink);
  proto._transform = transform;

  const cap = pieceSlots(64 * 1024 * 1024);
  const { peakPiecesInFlight, peakBufferedBytes } = sink.stats();
  t.log({ cap, peakPiecesInFlight, mostInZlib, destinations: DESTINATIONS });
  t.is(cap, PARALLEL_PIECES, 'the default budget allows the full cap');
  // With a cap per batch it would be up to DESTINATIONS × cap.
  t.true(mostInZlib <= cap, `${mostInZlib} pieces in zlib at once, cap ${cap}`);
  t.true(peakPiecesInFlight <= cap, `stats: ${peakPiecesInFlight} pieces at once, cap ${cap}`);
  t.true(mostInZlib >= Math.min(cap, 2), `several at once: ${mostInZlib}`);
  t.is(sink.stats().piecesInFlight, 0);
  // The compressors are set aside from the budget once, not per destination.
  t.true(peakBufferedBytes <= 64 * 1024 * 1024 - cap * COMPRESSOR_BYTES, `peak ${peakBufferedBytes}`);

  t.is(receipts.length, DESTINATIONS, 'one object per destination');
  for (const r of receipts) {
    const d = Number(/^hot\/(\d+)\//.exec(r.key)?.[1]);
    const gz = await env.s3.raw('bucket', r.key);
    t.is(members(gz).length, 1, `destination ${d}: one gzip member`);
    t.true(syncFlushes(gz) >= 3, `destination ${d}: ${syncFlushes(gz)} pieces`);
    t.deepEqual(await env.s3.lines('bucket', r.key), Array.from({ length: PER_DESTINATION }, (_, i) => line(d, i)), `destination ${d}: every line, in order`);
  }
});

// Serial: it watches every deflateRaw stream of the process.
test.serial("a hot destination's pieces get zlib output buffers sized by their length alone, not by the ratio compactions taught the sink: a piece's bytes depend on that size, and the spool may have to make them again in a fresh process", async (t) => {
  const proto = zlib.DeflateRaw.prototype as unknown as { _transform: Transform['_transform'] };
  const transform = proto._transform;
  const written: { bytes: number; chunkSize: number }[] = [];
  proto._transform = function (this: { _finishFlushFlag?: number; _chunkSize?: number }, chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    if (this._finishFlushFlag === zlib.constants.Z_SYNC_FLUSH) written.push({ bytes: chunk.length, chunkSize: this._chunkSize as number });
    transform.call(this, chunk, encoding, callback);
  };
  t.teardown(() => (proto._transform = transform));
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const sink = s3Sink({ bucket: 'bucket', s3: env.s3.s3Config, clock, maxBufferedBytes: 4 * 1024 * 1024 });
  const small = (d: number, round: number) => JSON.stringify({ d, round, level: 'info', msg: `request ${round} of tenant ${d} served` });
  const records = async function* () {
    // First a budget full of small batches: they are compacted, and the sink learns their ratio (about a tenth).
    for (let round = 0; round < 1200; round++) for (let d = 0; d < 100; d++) yield { prefix: `small/${d}/`, payload: small(d, round) };
    // Their window closes (the budget empties); the sink keeps what it learned.
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(61_000);
    // Then one destination of about 4 MiB: it streams, in pieces of about 1 MiB.
    for (let i = 0; i < 30_000; i++) yield { prefix: 'hot/', payload: logLine(i, `svc${i % 5}`) };
  };
  await pipeline(Readable.from(records()), sink);
  proto._transform = transform;

  const compactions = written.filter((w) => w.bytes < 512 * 1024);
  const pieces = written.filter((w) => w.bytes >= 900 * 1024);
  t.true(compactions.some((w) => w.chunkSize < 64 * 1024), `compactions' output buffers follow their ratio: ${compactions.length} compactions`);
  t.true(pieces.length >= 2, `${pieces.length} pieces of about 1 MiB`);
  for (const piece of pieces) t.is(piece.chunkSize, 256 * 1024, `a piece of ${piece.bytes} bytes`);
});
