import test from 'ava';
import { PartPool, Pieces } from '../lib/parts.js';

test('Pieces: parts are copied out in order across piece boundaries, the rest stays queued', (t) => {
  const pieces = new Pieces();
  pieces.push(Buffer.from('abc'));
  pieces.push(Buffer.alloc(0));
  pieces.push(Buffer.from('defgh'));
  pieces.push(Buffer.from('ij'));
  t.is(pieces.bytes, 10);
  const into = Buffer.alloc(8, 0x2e);
  t.is(pieces.copyOut(4, into).toString(), 'abcd');
  t.is(pieces.bytes, 6);
  t.is(pieces.copyOut(6, into).toString(), 'efghij');
  t.is(pieces.bytes, 0);
  pieces.push(Buffer.from('k'));
  t.is(pieces.takeAll().toString(), 'k');
  t.is(pieces.bytes, 0);
});

test('Pieces: more than queued, or more than the buffer holds, is refused', (t) => {
  const pieces = new Pieces();
  pieces.push(Buffer.from('abc'));
  t.throws(() => pieces.copyOut(4, Buffer.alloc(8)), { instanceOf: RangeError });
  t.throws(() => pieces.copyOut(3, Buffer.alloc(2)), { instanceOf: RangeError });
  t.is(pieces.bytes, 3, 'nothing taken');
  t.is(pieces.takeAll().toString(), 'abc');
});

test('Pieces: takeAll of one piece is that piece, not a copy; clear says how much it dropped', (t) => {
  const pieces = new Pieces();
  const only = Buffer.from('only');
  pieces.push(only);
  t.is(pieces.takeAll(), only);
  pieces.push(Buffer.from('xy'));
  pieces.push(Buffer.from('z'));
  t.is(pieces.clear(), 3);
  t.is(pieces.takeAll().length, 0);
});

test('Pieces: thousands of small pieces through many parts lose and reorder nothing', (t) => {
  const pieces = new Pieces();
  const all: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const piece = Buffer.from(`${i},`);
    all.push(piece);
    pieces.push(piece);
  }
  const expected = Buffer.concat(all);
  const out: Buffer[] = [];
  const into = Buffer.alloc(1000);
  while (pieces.bytes > 0) out.push(Buffer.from(pieces.copyOut(Math.min(997, pieces.bytes), into)));
  t.true(Buffer.concat(out).equals(expected));
});

test('PartPool: a buffer given back is taken again, up to `keep` of them; a foreign one (even of its size) or a partial one is not kept', (t) => {
  const pool = new PartPool(1024, 2);
  const a = pool.take();
  const b = pool.take();
  const c = pool.take();
  t.is(a.length, 1024);
  t.not(a.buffer, b.buffer);
  pool.give(a.subarray(0, 10));
  pool.give(b);
  pool.give(c);
  t.is(pool.free, 2, 'a third is not kept');
  const again = [pool.take(), pool.take()];
  t.true(again.some((x) => x.buffer === a.buffer) && again.some((x) => x.buffer === b.buffer), 'the two kept are the ones taken again');
  t.is(again.find((x) => x.buffer === a.buffer)?.length, 1024, 'the whole buffer comes back, not the part given');
  pool.give(Buffer.alloc(512));
  pool.give(Buffer.alloc(1024).subarray(1));
  // Of the pool's size, from its start, but not the pool's: whoever made it may use it again.
  pool.give(Buffer.alloc(1024));
  pool.give(Buffer.allocUnsafeSlow(1024));
  t.is(pool.free, 0);
});

test('PartPool: clear lets the kept buffers go; the next take is a new one', (t) => {
  const pool = new PartPool(64, 2);
  const a = pool.take();
  pool.give(a);
  t.is(pool.free, 1);
  pool.clear();
  t.is(pool.free, 0);
  t.not(pool.take().buffer, a.buffer);
});
