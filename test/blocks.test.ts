import test from 'ava';
import { BlockPool, GrowingBlocks, KEEP_BYTES, MAX_BLOCK, MIN_BLOCK } from '../lib/blocks.js';
import { heapPer } from './helpers/heap.js';

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
    const written: Buffer[] = [];
    let held = 0;
    let n = 0;
    for (const length of lengths(seed, 400)) {
      const data = Buffer.alloc(length, n++ % 251);
      given.push(Buffer.from(data));
      written.push(data);
      blocks.append(data);
      held += length;
      t.is(blocks.held, held);
      if (held > KEEP_BYTES) data.fill(0xff); // past KEEP_BYTES the blocks hold a copy: the writer's memory is its own again
    }
    const list = blocks.take();
    t.true(Buffer.concat(list).equals(Buffer.concat(given)), `seed ${seed}: the bytes differ`);
    t.is(blocks.held, 0);
    // The first pieces are kept as they came (views of the same memory), up to KEEP_BYTES in all.
    const sameMemory = (a: Buffer, b: Buffer) => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
    let kept = 0;
    while (kept < list.length && sameMemory(list[kept] as Buffer, written[kept] as Buffer)) kept++;
    const keptBytes = list.slice(0, kept).reduce((sum, b) => sum + b.length, 0);
    t.true(keptBytes <= KEEP_BYTES, `seed ${seed}: ${keptBytes} bytes kept`);
    list.splice(0, kept);
    // Blocks grow up to MAX_BLOCK (or hold the rest of one piece longer than that); only the last has room left.
    const sizes = list.map((b) => b.buffer.byteLength);
    for (let i = 0; i < list.length - 1; i++) t.is((list[i] as Buffer).length, sizes[i] as number, `seed ${seed}: block ${i} is full`);
    for (let i = 1; i < sizes.length; i++) t.true((sizes[i] as number) >= Math.min(MAX_BLOCK, sizes[i - 1] as number), `seed ${seed} block ${i}`);
    const room = (sizes[sizes.length - 1] as number) - (list[list.length - 1] as Buffer).length;
    t.true(room <= MAX_BLOCK, `seed ${seed}: ${room} bytes of room`);
    t.true(list.length <= 8 + Math.ceil(held / MAX_BLOCK), `seed ${seed}: ${list.length} blocks for ${held} bytes`);
  }
});

test('past KEEP_BYTES the pieces kept so far are copied too; after take the next piece starts anew; a batch of a few short lines has no block', (t) => {
  const blocks = new GrowingBlocks();
  const line = Buffer.from('abc\n');
  const big = Buffer.alloc(KEEP_BYTES + 100, 0x61);
  blocks.append(line); // kept as it came
  blocks.append(big); // past KEEP_BYTES: both copied into the first block
  const first = blocks.take();
  t.is(first.length, 1);
  t.is(first[0]?.buffer.byteLength, MIN_BLOCK);
  big.fill(0x62);
  t.true(Buffer.concat(first).equals(Buffer.concat([Buffer.from('abc\n'), Buffer.alloc(KEEP_BYTES + 100, 0x61)])));
  blocks.append(Buffer.alloc(KEEP_BYTES + 1, 0x63));
  const second = blocks.take();
  t.not(second[0]?.buffer, first[0]?.buffer);
  t.true(Buffer.concat(second).equals(Buffer.alloc(KEEP_BYTES + 1, 0x63)));
  t.deepEqual(blocks.take(), []);
  // 50 000 batches of one short line each, with a block of 1 KiB each, held 54 MB for 2.6 MB of lines.
  blocks.append(line);
  t.deepEqual(blocks.take(), [line]);
});

test('a pool hands back the blocks given to it, only its own, whole, and keeps at most maxFree bytes of them', (t) => {
  const pool = new BlockPool(4 * 1024);
  const a = pool.take(2048);
  const b = pool.take(2048);
  t.is(a.length, 2048);
  pool.give(a.subarray(0, 100)); // the used part of a block: the whole block goes back
  t.is(pool.freeBytes, 2048);
  pool.give(Buffer.allocUnsafeSlow(2048)); // not one of its own: never kept
  pool.give(b.subarray(1)); // not from its start: not kept
  t.is(pool.freeBytes, 2048);
  const again = pool.take(2048);
  t.is(again.buffer, a.buffer);
  t.is(again.length, 2048);
  t.is(pool.freeBytes, 0);
  pool.give(again);
  pool.give(b);
  pool.give(pool.take(1024)); // past maxFree (4 KiB): let go
  t.is(pool.freeBytes, 4096);
  pool.clear();
  t.is(pool.freeBytes, 0);
  t.not(pool.take(2048).buffer, a.buffer);
});

test('blocks from a pool: the same bytes, and blocks given back after a take are used by the next batch', (t) => {
  const pool = new BlockPool(1024 * 1024);
  const first = new GrowingBlocks(pool);
  for (let i = 0; i < 300; i++) first.append(Buffer.alloc(100, i));
  const list = first.take();
  const memories = new Set(list.map((b) => b.buffer));
  const copied = list.filter((b) => b.length !== 100);
  t.true(copied.length > 0 && copied.every((b) => b.buffer.byteLength === 2 ** Math.round(Math.log2(b.buffer.byteLength))), 'block sizes are powers of two');
  const copy = Buffer.concat(list);
  for (const block of list) pool.give(block);
  const second = new GrowingBlocks(pool);
  for (let i = 0; i < 300; i++) second.append(Buffer.alloc(100, 7));
  const next = second.take();
  t.true(next.some((b) => memories.has(b.buffer)));
  t.true(Buffer.concat(next).equals(Buffer.alloc(30000, 7)));
  t.is(copy.length, 30000);
  t.is(copy[0], 0);
  t.is(copy[29999], 299 % 256);
});

test('small batches keep where their pieces lie, not a Buffer object per piece: about 500 bytes of heap for eight pieces, not 1 000', (t) => {
  // 10 000 small batches holding eight pieces each, the pieces' memory aside.
  const slab = Buffer.alloc(8 * 1024);
  const { bytes: perBatch, made: all } = heapPer(10_000, () => {
    const blocks = new GrowingBlocks();
    for (let p = 0; p < 8; p++) blocks.append(slab.subarray(p * 300, p * 300 + 270));
    return blocks;
  });
  t.true(perBatch < 700, `${perBatch.toFixed(0)} bytes of heap per batch`);
  t.is(Buffer.concat((all[0] as GrowingBlocks).take()).length, 8 * 270);
});
