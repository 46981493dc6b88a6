import test from 'ava';
import { SLAB_BYTES, Slabs } from '../lib/slabs.js';

test('small copies are packed one after another into slabs of their own, large ones get memory of their own', (t) => {
  const slabs = new Slabs();
  const copies: Buffer[] = [];
  const originals: Buffer[] = [];
  for (let i = 0; i < 300; i++) {
    // Cut from Node's shared pool, as zlib's small outputs are.
    const original = Buffer.allocUnsafe(1 + ((i * 37) % 700)).fill(i % 256);
    originals.push(original);
    copies.push(slabs.copy(original));
  }
  const large = Buffer.alloc(SLAB_BYTES / 8 + 1, 7);
  const largeCopy = slabs.copy(large);
  for (const original of originals) original.fill(0xff);
  copies.forEach((copy, i) => t.true(copy.equals(Buffer.alloc(1 + ((i * 37) % 700), i % 256)), `copy ${i} kept its bytes`));
  t.true(largeCopy.equals(Buffer.alloc(SLAB_BYTES / 8 + 1, 7)));
  t.is(largeCopy.buffer.byteLength, largeCopy.length, 'a large copy has its own memory');
  const memory = new Set(copies.map((copy) => copy.buffer));
  for (const m of memory) t.is(m.byteLength, SLAB_BYTES, 'never Node\'s 8 KiB pool');
  const bytes = copies.reduce((sum, copy) => sum + ((copy.length + 7) & ~7), 0);
  t.true(memory.size <= Math.ceil(bytes / (SLAB_BYTES - 700)), `${memory.size} slabs for ${bytes} bytes`);
  // Copies in one slab never overlap.
  const bySlab = new Map<ArrayBufferLike, Buffer[]>();
  for (const copy of copies) bySlab.set(copy.buffer, [...(bySlab.get(copy.buffer) ?? []), copy]);
  for (const list of bySlab.values()) {
    list.sort((x, y) => x.byteOffset - y.byteOffset);
    for (let i = 1; i < list.length; i++) t.true((list[i - 1] as Buffer).byteOffset + (list[i - 1] as Buffer).length <= (list[i] as Buffer).byteOffset);
  }
});

test('after release, the next copy starts a new slab, and the copies before keep their bytes', (t) => {
  const slabs = new Slabs();
  const before = slabs.copy(Buffer.from('before'));
  slabs.release();
  const after = slabs.copy(Buffer.from('after'));
  t.not(before.buffer, after.buffer);
  t.is(before.toString(), 'before');
  t.is(after.toString(), 'after');
});
