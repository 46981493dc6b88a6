import test from 'ava';
import { GrowingBlocks, MAX_BLOCK } from '../lib/blocks.js';

/** A deterministic stream of piece lengths, mostly small, some past MAX_BLOCK. */
function* lengths(seed: number, count: number): Generator<number> {
  let x = seed;
  for (let i = 0; i < count; i++) {
    x = (x * 48271) % 2147483647;
    yield x % 50 === 0 ? MAX_BLOCK + (x % 5000) : x % 700;
  }
}

test('pieces appended come out as the same bytes, in order, in few blocks that grow with what is held', (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const blocks = new GrowingBlocks();
    const given: Buffer[] = [];
    let held = 0;
    let n = 0;
    for (const length of lengths(seed, 400)) {
      const data = Buffer.alloc(length, n++ % 251);
      given.push(Buffer.from(data));
      blocks.append(data);
      held += length;
      t.is(blocks.held, held);
      data.fill(0xff); // the writer's memory is its own again: the blocks hold a copy
    }
    const list = blocks.take();
    t.true(Buffer.concat(list).equals(Buffer.concat(given)), `seed ${seed}: the bytes differ`);
    t.is(blocks.held, 0);
    // Blocks grow up to MAX_BLOCK (or hold the rest of one piece longer than that); only the last has room left.
    const sizes = list.map((b) => b.buffer.byteLength);
    for (let i = 0; i < list.length - 1; i++) t.is((list[i] as Buffer).length, sizes[i] as number, `seed ${seed}: block ${i} is full`);
    for (let i = 1; i < sizes.length; i++) t.true((sizes[i] as number) >= Math.min(MAX_BLOCK, sizes[i - 1] as number), `seed ${seed} block ${i}`);
    const room = (sizes[sizes.length - 1] as number) - (list[list.length - 1] as Buffer).length;
    t.true(room <= MAX_BLOCK, `seed ${seed}: ${room} bytes of room`);
    t.true(list.length <= 8 + Math.ceil(held / MAX_BLOCK), `seed ${seed}: ${list.length} blocks for ${held} bytes`);
  }
});

test('after take the next piece starts a block of its own, and what was taken keeps its bytes', (t) => {
  const blocks = new GrowingBlocks();
  blocks.append(Buffer.from('abc\n'));
  blocks.append(Buffer.from('def\n'));
  const first = blocks.take();
  t.is(first.length, 1);
  blocks.append(Buffer.from('xyz\n'));
  const second = blocks.take();
  t.is(Buffer.concat(first).toString(), 'abc\ndef\n');
  t.is(Buffer.concat(second).toString(), 'xyz\n');
  t.not(second[0]?.buffer, first[0]?.buffer);
  t.deepEqual(blocks.take(), []);
});
