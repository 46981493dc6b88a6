import zlib from 'node:zlib';
import test from 'ava';
import { DICTIONARY_BYTES, gzipHeader, MemberSum, pieceOptions } from '../lib/gzipPieces.js';
import { logLine, noisyLine, prng } from './helpers/data.js';

/** Lines (half log lines, half noise), and the same bytes cut into pieces of about `size` after a newline. */
function linesIn(pieces: number, size: number): { data: Buffer; parts: Buffer[] } {
  const random = prng(11);
  const parts: Buffer[] = [];
  let n = 0;
  for (let i = 0; i < pieces; i++) {
    let text = '';
    while (text.length < size) text += `${n++ % 2 === 0 ? logLine(n, ['api', 'db', 'web'][n % 3]) : noisyLine(random, 40)}\n`;
    parts.push(Buffer.from(text));
  }
  return { data: Buffer.concat(parts), parts };
}

function member(parts: Buffer[], level: number, primed: boolean): Buffer {
  const sum = new MemberSum();
  const out = [gzipHeader(level)];
  let before: Buffer = Buffer.alloc(0);
  for (const part of parts) {
    out.push(zlib.deflateRawSync(part, pieceOptions(level, primed ? before.subarray(-DICTIONARY_BYTES) : undefined)));
    sum.add(part);
    before = part;
  }
  out.push(sum.end());
  return Buffer.concat(out);
}

test('pieces compressed apart make one gzip member: gunzip gives the bytes, the deflate stream between header and trailer is one stream, and the trailer holds their CRC-32 and length', (t) => {
  const { data, parts } = linesIn(6, 100_000);
  for (const primed of [false, true]) {
    const gz = member(parts, 6, primed);
    t.true(zlib.gunzipSync(gz).equals(data));
    // One member: the whole middle inflates as one raw deflate stream (a second member would start with a header there).
    t.true(zlib.inflateRawSync(gz.subarray(10, -8)).equals(data));
    t.is(gz.readUInt32LE(gz.length - 8), zlib.crc32(data) >>> 0);
    t.is(gz.readUInt32LE(gz.length - 4), data.length);
    t.deepEqual([...gz.subarray(0, 10)], [...zlib.gzipSync(data).subarray(0, 10)], "zlib's own header");
  }
});

test('priming each piece with the 32 KiB before it wins back what compressing apart costs', (t) => {
  const { data, parts } = linesIn(8, 64 * 1024);
  const one = zlib.gzipSync(data, { level: 6 }).length;
  const apart = member(parts, 6, false).length;
  const primed = member(parts, 6, true).length;
  t.true(primed < apart, `${primed} < ${apart}`);
  t.true(primed <= one * 1.01, `${primed} within 1 % of one stream's ${one}`);
});

test('an empty member (no pieces) and a piece of nothing are valid gzip of nothing', (t) => {
  t.is(zlib.gunzipSync(member([], 6, false)).length, 0);
  t.is(zlib.gunzipSync(member([Buffer.alloc(0), Buffer.from('a\n')], 1, true)).toString(), 'a\n');
});
