import { takeFront } from './gzipPieces.js';

/**
 * The pieces of one small batch: kept as they came while it holds at most
 * KEEP_BYTES, then all copied one after the other into blocks that grow with
 * what the batch holds: powers of two from MIN_BLOCK, each at least as large
 * as all it held before (so the room not yet used is at most twice what it
 * holds), up to MAX_BLOCK.
 *
 * Why: at a wide fan-out a chunk of input brings a few lines to each of
 * hundreds of batches, so each batch gets a piece of a few hundred bytes per
 * chunk (`join`'s copy, cut from Node's shared 8 KiB pool). Kept as they
 * came, a 64 MiB budget held by 1 000 small batches was about 800 000
 * Buffers, each an object with its own bookkeeping, pinning pool slabs that
 * other batches' pieces shared: peak RSS 344–385 MiB. Copied into blocks,
 * the batch holds a handful of Buffers, the pieces die young, and the same
 * run peaks at about 260 MiB.
 *
 * A piece fills what room the current block has left and goes on in the
 * next one: the room not yet used is in the last block only. Appending makes
 * no Buffer of its own (a view per piece cost as much as the copy): `take`
 * gives the pieces and blocks. With a `BlockPool`, blocks come from it, and
 * whoever took them gives them back once nothing reads them.
 */
export class GrowingBlocks {
  readonly #pool: BlockPool | null;
  /**
   * The pieces kept as they came, while there is no block: the memory each
   * lies in, and its offset and length there (two numbers per piece). Not
   * the pieces' Buffers: each is an object of about 90 bytes on V8's heap,
   * and 10 000 small batches kept 75 000 of them (7 MiB, which V8 then lets
   * grow a few times over before it collects).
   */
  #keptIn: ArrayBufferLike[] = [];
  #keptAt: number[] = [];
  /** Full blocks, in order (once there is a block). */
  #full: Buffer[] = [];
  #block: Buffer | null = null;
  #used = 0;
  #held = 0;

  constructor(pool: BlockPool | null = null) {
    this.#pool = pool;
  }

  /** Bytes appended since the last `take`. */
  get held(): number {
    return this.#held;
  }

  /** Appends `data`: kept as it is while the batch holds at most KEEP_BYTES, copied after that (the caller does not change it again). */
  append(data: Buffer): void {
    const n = data.length;
    if (n === 0) return;
    if (this.#block === null) {
      // No block yet: all it holds (at most KEEP_BYTES) is pieces kept as they came.
      if (this.#held + n <= KEEP_BYTES) {
        this.#keptIn.push(data.buffer);
        this.#keptAt.push(data.byteOffset, n);
        this.#held += n;
        return;
      }
      if (this.#held > 0) {
        // Past KEEP_BYTES: the pieces kept so far go into the first block too, so that they keep no pool slab alive.
        const first = this.#newBlock(Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, this.#held + n)));
        takeFront(this.#takeKept(), this.#held, first);
        this.#block = first;
        this.#used = this.#held;
      }
    }
    let at = 0;
    const current = this.#block;
    if (current !== null) {
      // What fits goes at the end of the current block, so that no room is left behind unused.
      at = Math.min(n, current.length - this.#used);
      if (at > 0) {
        current.set(at === n ? data : data.subarray(0, at), this.#used);
        this.#used += at;
      }
    }
    if (at < n) {
      if (current !== null) this.#full.push(current);
      const block = this.#newBlock(Math.max(n - at, Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, this.#held + at))));
      block.set(at === 0 ? data : data.subarray(at), 0);
      this.#block = block;
      this.#used = n - at;
    }
    this.#held += n;
  }

  /** What was appended, in order (the pieces kept as they came, or full blocks then the used part of the last); the next append starts a block of its own. */
  take(): Buffer[] {
    const list = this.#block === null ? this.#takeKept() : this.#full;
    if (this.#block !== null && this.#used > 0) list.push(this.#block.subarray(0, this.#used));
    this.#full = [];
    this.#block = null;
    this.#used = 0;
    this.#held = 0;
    return list;
  }

  /** The pieces kept as they came, as Buffers again (views of the same memory); none are kept after. */
  #takeKept(): Buffer[] {
    const pieces: Buffer[] = new Array(this.#keptIn.length);
    for (let i = 0; i < pieces.length; i++) pieces[i] = Buffer.from(this.#keptIn[i] as ArrayBuffer, this.#keptAt[2 * i], this.#keptAt[2 * i + 1]);
    this.#keptIn = [];
    this.#keptAt = [];
    return pieces;
  }

  /** A block of at least `want` bytes: a power of two from the pool, or past MAX_BLOCK (the rest of one long piece) one of its own, never pooled. */
  #newBlock(want: number): Buffer {
    if (want > MAX_BLOCK) return Buffer.allocUnsafeSlow(want);
    const size = 2 ** Math.ceil(Math.log2(want));
    return this.#pool !== null ? this.#pool.take(size) : Buffer.allocUnsafeSlow(size);
  }
}

/**
 * A batch keeps its pieces as they came (cut from Node's shared pool) until it
 * holds more than this: most batches at a very wide fan-out never do, and a
 * block each would cost them more than their bytes. With a first block of
 * 1 KiB for every batch, 50 000 batches of one short line each held 54 MB of
 * blocks for 2.6 MB of lines; with blocks from 128 bytes, 10 000 batches of
 * about 2 KiB each peaked 35–40 MiB above keeping their pieces.
 */
export const KEEP_BYTES = 4 * 1024;
/** The first block of a batch (one that holds more than KEEP_BYTES). */
export const MIN_BLOCK = 8 * 1024;
/** The largest block: past it a batch's blocks add up one by one. */
export const MAX_BLOCK = 64 * 1024;

/**
 * Blocks used again. A block is a Buffer outside V8's heap: made afresh for
 * every batch, each became garbage at the batch's compression, and at 1 000
 * destinations that churn made V8 run a full collection about every 100 ms
 * (31 per 200 MiB, against 6 before blocks). Blocks given back after their
 * bytes were copied out (or compressed) are taken again, up to `maxFree`
 * bytes of them kept.
 */
export class BlockPool {
  readonly #free = new Map<number, Buffer[]>();
  /** The memory of the blocks this pool made: no other Buffer is ever kept. */
  readonly #made = new WeakSet<ArrayBufferLike>();
  readonly #maxFree: number;
  #freeBytes = 0;

  constructor(maxFree: number) {
    this.#maxFree = maxFree;
  }

  /** Bytes kept, not in use. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** A block of `size` bytes (a power of two up to MAX_BLOCK). */
  take(size: number): Buffer {
    const kept = this.#free.get(size)?.pop();
    if (kept !== undefined) {
      this.#freeBytes -= size;
      return kept;
    }
    const block = Buffer.allocUnsafeSlow(size);
    this.#made.add(block.buffer);
    return block;
  }

  /** `data`, when it is a block of this pool (whole, or a part from its start) that nothing reads any more. */
  give(data: Buffer): void {
    const memory = data.buffer;
    if (data.byteOffset !== 0 || !this.#made.has(memory) || this.#freeBytes + memory.byteLength > this.#maxFree) return;
    let list = this.#free.get(memory.byteLength);
    if (list === undefined) {
      list = [];
      this.#free.set(memory.byteLength, list);
    }
    list.push(Buffer.from(memory, 0, memory.byteLength));
    this.#freeBytes += memory.byteLength;
  }

  /** Lets the kept blocks go (nothing holds small batches for now). */
  clear(): void {
    this.#free.clear();
    this.#freeBytes = 0;
  }
}
