/**
 * Copies of small Buffers that are kept a while (compressed objects waiting
 * for their upload), packed one after another into slabs of their own.
 *
 * Why not `Buffer.from`: a copy of under 4 KiB is cut from Node's shared
 * 8 KiB pool, next to short-lived Buffers (the batch's lines joined, zlib's
 * output buffer). The copy keeps its whole slab alive until it is uploaded.
 * At 10 000 destinations, when their 10 000 small batches ended at once,
 * each compressed object of about 600 bytes kept about 6 KiB of slabs alive
 * while it waited for its turn to upload: ArrayBuffers peaked at 65 MiB.
 * Packed here, the slabs hold only such copies, and they peaked at 29 MiB.
 */
export class Slabs {
  readonly #slabBytes: number;
  #slab: Buffer | null = null;
  #used = 0;

  /** `slabBytes`: the size of each slab; a Buffer larger than an eighth of it is copied on its own. */
  constructor(slabBytes = SLAB_BYTES) {
    this.#slabBytes = slabBytes;
  }

  /** A copy of `data`: in the current slab (a new one when it has no room), or, for a large one, in memory of its own. */
  copy(data: Uint8Array): Buffer {
    const n = data.length;
    if (n > this.#slabBytes / 8) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(data);
      return own;
    }
    if (this.#slab === null || this.#used + n > this.#slabBytes) {
      this.#slab = Buffer.allocUnsafeSlow(this.#slabBytes);
      this.#used = 0;
    }
    const copy = this.#slab.subarray(this.#used, this.#used + n);
    copy.set(data);
    // Aligned to 8 bytes, as Node's pool does.
    this.#used += (n + 7) & ~7;
    return copy;
  }

  /** Lets the current slab go (what was copied into it stays valid): nothing will be copied for a while. */
  release(): void {
    this.#slab = null;
    this.#used = 0;
  }
}

/** Each slab: 16 copies of 4 KiB (those Node's pool would have cut), or about a hundred compressed small batches. */
export const SLAB_BYTES = 64 * 1024;
