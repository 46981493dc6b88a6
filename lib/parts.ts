/**
 * The bytes of an upload's parts: compressed pieces queued as they come
 * (`Pieces`), copied out a part at a time into buffers of a pool
 * (`PartPool`) that are used again once S3 has the part.
 *
 * Why a pool: a part is a request body of `partSize` (8 MiB by default).
 * Allocated fresh for every part, each becomes garbage outside V8's heap
 * that is freed only when a collection happens to run, so the dead ones pile
 * up in RSS (V8 starts a collection for external memory only after about
 * 64 MiB more of it). Taken from a pool, one destination at full speed
 * touches the same few buffers over and over.
 */

/** Compressed bytes waiting to become a request body, in the order they came. */
export class Pieces {
  #list: Buffer[] = [];
  #head = 0;
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.#list.push(data);
    this.#bytes += data.length;
  }

  /** Drops them all; the number of bytes dropped. */
  clear(): number {
    const dropped = this.#bytes;
    this.#list = [];
    this.#head = 0;
    this.#bytes = 0;
    return dropped;
  }

  /** The first `n` bytes (at most `bytes`), copied into `into` from its start; they leave the queue. */
  copyOut(n: number, into: Buffer): Buffer {
    if (n > this.#bytes || n > into.length) throw new RangeError(`copyOut(${n}): ${this.#bytes} bytes queued, room for ${into.length}`);
    let at = 0;
    while (at < n) {
      const first = this.#list[this.#head] as Buffer;
      const take = Math.min(first.length, n - at);
      first.copy(into, at, 0, take);
      at += take;
      if (take === first.length) {
        this.#list[this.#head] = EMPTY;
        this.#head += 1;
      } else {
        this.#list[this.#head] = first.subarray(take);
      }
    }
    this.#bytes -= n;
    if (this.#head === this.#list.length) {
      this.#list = [];
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#list = this.#list.slice(this.#head);
      this.#head = 0;
    }
    return into.subarray(0, n);
  }

  /** All of them as one buffer (the only piece itself when there is one); the queue is left empty. */
  takeAll(): Buffer {
    const live = this.#list.slice(this.#head);
    const all = live.length === 1 ? (live[0] as Buffer) : Buffer.concat(live, this.#bytes);
    this.clear();
    return all;
  }
}

const EMPTY = Buffer.alloc(0);

/** Buffers of `size` bytes, up to `keep` of them kept for the next part. */
export class PartPool {
  readonly size: number;
  readonly #keep: number;
  readonly #free: Buffer[] = [];
  /** The memory of the buffers this pool made: a buffer from anywhere else, even of the same size, is never kept (whoever made it may still use it). */
  readonly #made = new WeakSet<ArrayBufferLike>();

  constructor(size: number, keep: number) {
    this.size = size;
    this.#keep = keep;
  }

  /** Buffers kept, not in use. */
  get free(): number {
    return this.#free.length;
  }

  /** Lets the kept buffers go (nothing uploads for now: a long-running sink should not hold them through a quiet spell). */
  clear(): void {
    this.#free.length = 0;
  }

  take(): Buffer {
    const kept = this.#free.pop();
    if (kept !== undefined) return kept;
    // Never a slice of Node's shared pool: a part buffer is as large as a part, and its own.
    const made = Buffer.allocUnsafeSlow(this.size);
    this.#made.add(made.buffer);
    return made;
  }

  /** A buffer taken from this pool (or a part of it from its start), once nothing reads it any more; any other buffer is left alone. */
  give(buffer: Buffer): void {
    if (buffer.byteOffset !== 0 || !this.#made.has(buffer.buffer) || this.#free.length >= this.#keep) return;
    this.#free.push(Buffer.from(buffer.buffer, 0, this.size));
  }
}
