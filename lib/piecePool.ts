/**
 * The sink's cap on pieces compressed at once (`parallelGzip`), across all
 * its batches: at most `slots` run; the others wait in the order they were
 * given, whatever batch they belong to. The budget sets aside a compressor
 * per slot once (see ledger.ts `reservedBytes`), so the memory a sink holds
 * for compressing on several cores does not grow with the number of hot
 * destinations.
 *
 * A piece that finds no free slot waits for one; it never falls back to
 * being compressed another way: how a batch is compressed must depend only
 * on its bytes, or a batch delivered again from the spool would not make the
 * same object.
 *
 * `gzip` waits (`whenNoneWaiting`) before it takes more input while pieces
 * wait: backpressure, not a growing queue. A job always ends (zlib calls
 * back, with a result or an error), so a wait always ends too.
 */
export class PiecePool {
  readonly slots: number;
  #running = 0;
  #peak = 0;
  readonly #queue: ((done: () => void) => void)[] = [];
  #waiters: (() => void)[] = [];

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots: a positive integer, not ${slots}`);
    this.slots = slots;
  }

  /** Pieces being compressed now. */
  get running(): number {
    return this.#running;
  }

  /** The most pieces ever compressed at once: never more than `slots`. */
  get peak(): number {
    return this.#peak;
  }

  /** Pieces waiting for a slot. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Runs `job` when a slot is free (at once if one is), in the order given; `job` calls `done` once, when its piece is compressed or failed. */
  run(job: (done: () => void) => void): void {
    this.#queue.push(job);
    this.#next();
  }

  /** Calls `wake` once no piece waits for a slot (at once when none does). */
  whenNoneWaiting(wake: () => void): void {
    if (this.#queue.length === 0) wake();
    else this.#waiters.push(wake);
  }

  #next(): void {
    while (this.#running < this.slots && this.#queue.length > 0) {
      const job = this.#queue.shift() as (done: () => void) => void;
      this.#running += 1;
      if (this.#running > this.#peak) this.#peak = this.#running;
      let called = false;
      job(() => {
        if (called) return;
        called = true;
        this.#running -= 1;
        this.#next();
      });
    }
    if (this.#queue.length === 0 && this.#waiters.length > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }
}
