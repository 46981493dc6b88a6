/**
 * The small pieces of one batch, copied one after the other into blocks that
 * grow with what the batch holds: from MIN_BLOCK, about as large as all it
 * held before (so the room not yet used is at most what it holds, or
 * MIN_BLOCK), up to MAX_BLOCK.
 *
 * Why: at a wide fan-out a chunk of input brings a few lines to each of
 * hundreds of batches, so each batch gets a piece of a few hundred bytes per
 * chunk (`join`'s copy, cut from Node's shared 8 KiB pool). Kept as they
 * came, a 64 MiB budget held by 1 000 small batches was about 800 000
 * Buffers, each an object with its own bookkeeping, pinning pool slabs that
 * other batches' pieces shared: peak RSS 372 MiB. Copied into blocks, the
 * batch holds a handful of Buffers, the pieces die young, and the same run
 * peaks at about 240 MiB.
 *
 * A piece fills what room the current block has left and goes on in the
 * next one: the room not yet used is in the last block only. Appending makes
 * no Buffer of its own (a view per piece cost as much as the copy): `take`
 * gives the blocks.
 */
export class GrowingBlocks {
  /** Blocks already full, in order. */
  #full: Buffer[] = [];
  #block: Buffer | null = null;
  #used = 0;
  #held = 0;

  /** Bytes appended since the last `take`. */
  get held(): number {
    return this.#held;
  }

  /** Appends a copy of `data`. */
  append(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
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
      const block = Buffer.allocUnsafeSlow(Math.max(n - at, Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, this.#held + at))));
      block.set(at === 0 ? data : data.subarray(at), 0);
      this.#block = block;
      this.#used = n - at;
    }
    this.#held += n;
  }

  /** What was appended, in order (full blocks, then the used part of the last); the next append starts a block of its own. */
  take(): Buffer[] {
    const list = this.#full;
    if (this.#block !== null && this.#used > 0) list.push(this.#block.subarray(0, this.#used));
    this.#full = [];
    this.#block = null;
    this.#used = 0;
    this.#held = 0;
    return list;
  }
}

/** The first block of a batch; a batch of a few short lines costs no more than this beyond its bytes. */
export const MIN_BLOCK = 1024;
/** The largest block: past it a batch's blocks add up one by one. */
export const MAX_BLOCK = 64 * 1024;
