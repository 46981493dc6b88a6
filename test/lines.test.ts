import test from 'ava';
import { LineCounter, LineSplitter, unpackLines } from '../lib/lines.js';
import { prng } from './helpers/data.js';

function splitAll(chunks: (string | Buffer)[], max = 1024) {
  const splitter = new LineSplitter(max);
  const lines: Buffer[] = [];
  const oversized: { bytes: number; head: string }[] = [];
  for (const chunk of [...chunks.map((c) => splitter.push(Buffer.isBuffer(c) ? c : Buffer.from(c))), splitter.end()]) {
    lines.push(...chunk.lines);
    oversized.push(...chunk.oversized.map((o) => ({ bytes: o.bytes, head: o.head.toString() })));
  }
  return { lines: lines.map((l) => l.toString('utf8')), raw: lines, oversized };
}

/** Up to `most` of `pieces` at random, as text and cut into chunks of 1 to `chunkMax` bytes. */
function randomInput(random: () => number, pieces: string[], most: number, chunkMax: number): { text: string; chunks: Buffer[] } {
  let text = '';
  for (let n = Math.floor(random() * most); n > 0; n--) text += pieces[Math.floor(random() * pieces.length)];
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(random() * chunkMax);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return { text, chunks };
}

test('four lines on three writes', (t) => {
  t.deepEqual(splitAll(['hello\nwor', 'ld\nfoo\nb', 'ar\n']).lines, ['hello', 'world', 'foo', 'bar']);
});

test('a line split over many chunks, and a last line without a line break', (t) => {
  t.deepEqual(splitAll(['a', 'b', 'c', '\n', 'd', 'e']).lines, ['abc', 'de']);
});

test('a UTF-8 character split across two chunks comes out whole', (t) => {
  const euro = Buffer.from('€'); // e2 82 ac
  const { lines } = splitAll([Buffer.concat([Buffer.from('price: '), euro.subarray(0, 1)]), Buffer.concat([euro.subarray(1), Buffer.from('5\n')])]);
  t.deepEqual(lines, ['price: €5']);
});

test('CRLF line ends lose their \\r; empty lines are skipped', (t) => {
  t.deepEqual(splitAll(['a\r\n\r\nb\r', '\n\n\nc\n']).lines, ['a', 'b', 'c']);
});

test('invalid UTF-8 and NUL bytes pass through unchanged', (t) => {
  const odd = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3]);
  const { raw } = splitAll([Buffer.concat([odd, Buffer.from('\n')])]);
  t.deepEqual(raw, [odd]);
});

test('a line longer than maxLineBytes is reported and the lines around it arrive', (t) => {
  const long = 'x'.repeat(100);
  const { lines, oversized } = splitAll(['before\n', long.slice(0, 30), long.slice(30), '\nafter\n', 'y'.repeat(50), '\n'], 40);
  t.deepEqual(lines, ['before', 'after']);
  t.is(oversized.length, 2);
  t.is(oversized[0]?.bytes, 100);
  t.true(oversized[0]?.head.startsWith('xxxx'));
  t.is(oversized[1]?.bytes, 50);
});

test('a line of exactly maxLineBytes passes, with or without CRLF', (t) => {
  const { lines, oversized } = splitAll(['abcd\nefgh\r\n', 'ij', 'kl\r', '\n'], 4);
  t.deepEqual(lines, ['abcd', 'efgh', 'ijkl']);
  t.is(oversized.length, 0);
});

test('an oversized last line without a line break is reported at the end', (t) => {
  const { lines, oversized } = splitAll(['ok\n', 'z'.repeat(20)], 10);
  t.deepEqual(lines, ['ok']);
  t.is(oversized[0]?.bytes, 20);
});

test('LineCounter counts what LineSplitter returns or reports as oversized, at every chunking, without keeping bytes', (t) => {
  const random = prng(12);
  const pieces = ['a', 'bc', '\n', '\r', '\r\n', '\n\n', 'x'.repeat(40), '\u00e9', ''];
  for (let round = 0; round < 500; round++) {
    const { text, chunks } = randomInput(random, pieces, 30, 8);
    const { lines, oversized } = splitAll(chunks, 30);
    const counter = new LineCounter();
    for (const chunk of chunks) counter.push(chunk);
    const before = counter.lines;
    counter.end();
    t.is(counter.lines, lines.length + oversized.length, JSON.stringify(text));
    t.true(before === counter.lines || before === counter.lines - 1);
  }
  const counter = new LineCounter();
  for (const chunk of ['\r', '\n', 'a\r', '\n', '\r\r\n', 'b']) counter.push(Buffer.from(chunk));
  t.is(counter.lines, 2, 'a lone \\r before \\n is an empty line; "a" and "\\r" are lines');
  counter.end();
  t.is(counter.lines, 3, 'the last line without \\n counts at the end');
});

test('pushPacked gives the bytes, events and reports that push gives, at every chunking; a regular chunk is one view of it', (t) => {
  const random = prng(21);
  const pieces = ['a', 'bc', '\n', '\r', '\r\n', '\n\n', 'x'.repeat(40), '\u00e9', '', 'line\n', 'ok\nok\nok\n'];
  let packedSeen = 0;
  for (let round = 0; round < 800; round++) {
    const { text, chunks } = randomInput(random, pieces, 40, 24);
    const { raw, oversized } = splitAll(chunks, 30);
    const splitter = new LineSplitter(30);
    const framed: Buffer[] = [];
    let events = 0;
    const reported: number[] = [];
    for (const chunk of chunks) {
      const out = splitter.pushPacked(chunk);
      for (const line of out.lines) framed.push(line, Buffer.from('\n'));
      events += out.lines.length;
      if (out.packed !== null) {
        t.is(out.packed.buffer, chunk.buffer, 'a view of the chunk, not a copy');
        t.is(chunk[out.packed.byteOffset - chunk.byteOffset + out.packed.length], 10, 'its last \\n lies right after it');
        framed.push(out.packed, Buffer.from('\n'));
        events += out.packedLines;
        packedSeen += 1;
      }
      reported.push(...out.oversized.map((o) => o.bytes));
    }
    const last = splitter.end();
    for (const line of last.lines) framed.push(line, Buffer.from('\n'));
    events += last.lines.length;
    reported.push(...last.oversized.map((o) => o.bytes));
    t.is(Buffer.concat(framed).toString('latin1'), raw.map((l) => `${l.toString('latin1')}\n`).join(''), JSON.stringify(text));
    t.is(events, raw.length);
    t.deepEqual(reported, oversized.map((o) => o.bytes));
  }
  t.true(packedSeen > 500, `regular stretches were packed (${packedSeen})`);
});

test('unpackLines splits packed entries back into their lines and leaves single lines as they are', (t) => {
  const entries = [Buffer.from('one'), Buffer.from('two\nthree\nfour'), 'five'];
  t.deepEqual(unpackLines(entries).map(String), ['one', 'two', 'three', 'four', 'five']);
});
