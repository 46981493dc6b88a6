import test from 'ava';
import { GrowingBlocks, MAX_BLOCK, MIN_BLOCK } from '../lib/blocks.js';

/** A deterministic stream of piece lengths, mostly small, some past MAX_BLOCK. */
function* lengths(seed: number, count: number): Generator<number> {
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    yield x % 50 === 0 ? MAX_BLOCK + (x % 5000) : x % 700;
  }
}

test('pieces appended come out as the same bytes, in order, in few blocks that grow with what is held', (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const blocks = new GrowingBlocks();
    const list: Buffer[] = [];
    const given: Buffer[] = [];
    let held = 0;
    let n = 0;
    for (const length of lengths(seed, 400)) {
      const data = Buffer.alloc(length, n++ % 251);
      given.push(Buffer.from(data));
      blocks.append(list, data, held);
      held += length;
      data.fill(0xff); // the writer's memory is its own again: the list holds a copy
    }
    t.true(Buffer.concat(list).equals(Buffer.concat(given)), `seed ${seed}: the bytes differ`);
    t.is(list.reduce((sum, b) => sum + b.length, 0), held);
    // Blocks grow up to MAX_BLOCK (or hold the rest of one piece longer than that); only the last has room left.
    const sizes = list.map((b) => b.buffer.byteLength);
    for (let i = 0; i < list.length - 1; i++) t.is((list[i] as Buffer).length, sizes[i] as number, `seed ${seed}: block ${i} is full`);
    for (let i = 1; i < sizes.length; i++) t.true((sizes[i] as number) >= Math.min(MAX_BLOCK, sizes[i - 1] as number), `seed ${seed} block ${i}`);
    const room = (sizes[sizes.length - 1] as number) - (list[list.length - 1] as Buffer).length;
    t.true(room <= MAX_BLOCK, `seed ${seed}: ${room} bytes of room`);
    t.true(list.length <= 8 + Math.ceil(held / MAX_BLOCK), `seed ${seed}: ${list.length} blocks for ${held} bytes`);
  }
});

test('after reset (the list was taken or cut) the next piece starts a block of its own, and earlier views keep their bytes', (t) => {
  const blocks = new GrowingBlocks();
  const first: Buffer[] = [];
  blocks.append(first, Buffer.from('abc\n'), 0);
  blocks.append(first, Buffer.from('def\n'), 4);
  t.is(first.length, 1);
  const taken = first[0] as Buffer;
  blocks.reset();
  const second: Buffer[] = [];
  blocks.append(second, Buffer.from('xyz\n'), 0);
  t.is(taken.toString(), 'abc\ndef\n');
  t.is(Buffer.concat(second).toString(), 'xyz\n');
  t.not(second[0]?.buffer, taken.buffer);
});

test('an empty list (taken without reset) starts a new block rather than writing after views it no longer holds', (t) => {
  const blocks = new GrowingBlocks();
  let list: Buffer[] = [];
  blocks.append(list, Buffer.from('one\n'), 0);
  const old = list;
  list = [];
  blocks.append(list, Buffer.from('two\n'), 0);
  t.is(Buffer.concat(old).toString(), 'one\n');
  t.is(Buffer.concat(list).toString(), 'two\n');
});
