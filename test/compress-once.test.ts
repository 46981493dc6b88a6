import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import test from 'ava';
import { compressOnce } from '../lib/compressOnce.js';
import { DICTIONARY_BYTES, pieceOptions } from '../lib/gzipPieces.js';
import { logLine, prng } from './helpers/data.js';

function once(format: 'gzip' | 'deflateRaw', raw: Buffer, options: zlib.ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => compressOnce(format, raw, options, (err, out) => (err ? reject(err) : resolve(out))));
}

function zlibs(format: 'gzip' | 'deflateRaw', raw: Buffer, options: zlib.ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => zlib[format](raw, options, (err, out) => (err ? reject(err) : resolve(out))));
}

/** Log lines, incompressible bytes, or half of each: `size` bytes. */
function input(kind: number, size: number, seed: number): Buffer {
  const random = prng(seed);
  let text = '';
  for (let n = seed; text.length < size; n++) text += `${logLine(n, ['api', 'db', 'web'][Math.floor(random() * 3)] as string)}\n`;
  const lines = Buffer.from(text).subarray(0, size);
  if (kind === 0) return lines;
  if (kind === 1) return randomBytes(size);
  return Buffer.concat([lines.subarray(0, size >> 1), randomBytes(size - (size >> 1))]);
}

test('compressOnce gives the bytes zlib.gzip and zlib.deflateRaw give: a whole batch, and a piece ended by a sync flush with a dictionary, whatever the size, level (0 included) and output buffer', async (t) => {
  // An output buffer of 64 bytes makes a trip to the pool per 64 bytes out: the flush goes on over many of them.
  const sizes = [0, 1, 100, 4_096, 65_536 + 17, 300_000, 1_100_000];
  const chunkSizes = [64, 16_384, 262_144];
  let compared = 0;
  for (let i = 0; i < sizes.length * 6; i++) {
    const size = sizes[i % sizes.length] as number;
    const raw = input(i % 3, size, i);
    const level = [1, 6, 9, 0][i % 4] as number;
    const chunkSize = chunkSizes[i % chunkSizes.length] as number;
    const whole = { level, chunkSize };
    t.true((await once('gzip', raw, whole)).equals(await zlibs('gzip', raw, whole)), `gzip of ${size} bytes, level ${level}, chunkSize ${chunkSize}`);
    const dictionary = i % 2 === 0 ? input(0, DICTIONARY_BYTES, i + 1000) : undefined;
    const piece = pieceOptions(level, dictionary, chunkSize);
    const out = await once('deflateRaw', raw, piece);
    t.true(out.equals(await zlibs('deflateRaw', raw, piece)), `piece of ${size} bytes, level ${level}, chunkSize ${chunkSize}, dictionary ${dictionary !== undefined}`);
    // And it is what it should be: a piece (no final block: it ends with a sync flush) inflates, with its dictionary, to its bytes.
    t.true(zlib.inflateRawSync(out, { finishFlush: zlib.constants.Z_SYNC_FLUSH, ...(dictionary ? { dictionary } : {}) }).equals(raw));
    compared += 2;
  }
  t.is(compared, sizes.length * 12);
  // Level 0 cuts stored blocks where a call ends: zlib's own two calls are kept for it (the one-call way gave 300 043 bytes here, zlib 300 048).
  const stored = Buffer.alloc(300_000, 'abc\n');
  for (const chunkSize of [65_536, 262_144]) {
    t.true((await once('gzip', stored, { level: 0, chunkSize })).equals(await zlibs('gzip', stored, { level: 0, chunkSize })), `level 0, chunkSize ${chunkSize}`);
  }
});

test('compressOnce refuses bad options as zlib does, by throwing before any callback', (t) => {
  let called = false;
  t.throws(() => compressOnce('gzip', Buffer.from('x'), { level: 42 }, () => (called = true)), { code: 'ERR_OUT_OF_RANGE' });
  t.false(called);
});
