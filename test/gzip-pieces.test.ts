import zlib from 'node:zlib';
import test from 'ava';
import { DICTIONARY_BYTES, gzipHeader, MemberSum, pieceEnd, pieceOptions, takeFront } from '../lib/gzipPieces.js';
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

test('pieceEnd and takeFront cut a batch where cutting its bytes as one buffer would, however they came in buffers', (t) => {
  const random = prng(5);
  // The cut as gzip made it before: on the batch's bytes as one buffer.
  const reference = (data: Buffer, size: number, all: boolean): number => {
    let cut = data.length >= size ? data.lastIndexOf(10, size - 1) : -1;
    if (cut === -1 && data.length >= size) cut = data.indexOf(10, size);
    if (cut === -1) return all ? data.length : -1;
    return cut + 1;
  };
  for (let round = 0; round < 2000; round++) {
    const size = 1 + Math.floor(random() * 40);
    let text = '';
    for (let n = Math.floor(random() * 12); n > 0; n--) text += random() < 0.3 ? '\n' : 'x'.repeat(Math.floor(random() * 30));
    let data = Buffer.from(text);
    const list: Buffer[] = [];
    for (let at = 0; at < data.length; ) {
      const n = Math.floor(random() * 16); // empty buffers too
      list.push(data.subarray(at, at + n));
      at += n;
    }
    const all = random() < 0.5;
    for (;;) {
      const end = pieceEnd(list, data.length, size, all);
      t.is(end, reference(data, size, all), JSON.stringify({ text, size, all }));
      if (end <= 0) break;
      const piece = takeFront(list, end, Buffer.alloc(end + 3));
      t.is(piece.toString(), data.subarray(0, end).toString());
      data = data.subarray(end);
      t.is(Buffer.concat(list).toString(), data.toString(), 'what is left stays queued, in order');
    }
  }
});
