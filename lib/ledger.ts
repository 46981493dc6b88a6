import { availableParallelism } from 'node:os';
import { DICTIONARY_BYTES } from './gzipPieces.js';
/** What the budget knows of a batch: its key (a batch is identified by its key, not by an object). */
export type BatchRef = { readonly key: string };

/**
 * The memory budget (`maxBufferedBytes`) shared by the stages of one sink.
 *
 * It counts what the sink holds for batches not yet in S3:
 * - line bytes admitted by `window` and not yet compressed,
 * - compressed bytes not yet acknowledged by S3 (the multipart buffers),
 * - a fixed `COMPRESSOR_BYTES` for each batch with a compressor of its own
 *   (`parallelGzip: false`), or `DICTIONARY_BYTES` for each streaming batch
 *   compressed in pieces (the tail it keeps as the next piece's dictionary);
 * - with `parallelGzip`, set aside once per sink, not per batch: the
 *   compressors of the pieces in flight (`pieceSlots` of them, across all
 *   batches), `COMPRESSOR_BYTES` each (see `reserved`).
 *
 * Only `window` adds to it, before it lets events in; it waits (backpressure)
 * when they would not fit. `gzip` converts line bytes into compressed bytes and
 * `upload` releases them as parts and objects are acknowledged.
 */

/**
 * Resident memory of one running gzip stream (zlib's deflate state at the
 * default memLevel, plus its output buffer), rounded up. Measured: 500 streams
 * at level 6 cost 327 KiB of RSS each on Node 20.
 */
export const COMPRESSOR_BYTES = 384 * 1024;

/**
 * Threads of libuv's pool, where zlib runs (`UV_THREADPOOL_SIZE`, default 4,
 * read by libuv once): a piece given to zlib beyond them only waits there,
 * holding its compressor.
 */
function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, 1024) : 4;
}

/**
 * With `parallelGzip`: pieces compressed at once, across all the batches of a
 * sink: a thread each (as many as there are cores and pool threads), and one
 * more queued, so that a thread that finishes finds the next piece waiting
 * instead of waiting for the main thread.
 */
export const PARALLEL_PIECES = Math.min(availableParallelism(), threadPoolSize()) + 1;

/**
 * The sink's cap on pieces in flight: PARALLEL_PIECES, fewer when their
 * compressors would take more than a quarter of the budget (at least one).
 */
export function pieceSlots(maxBufferedBytes: number): number {
  return Math.max(1, Math.min(PARALLEL_PIECES, Math.floor(maxBufferedBytes / 4 / COMPRESSOR_BYTES)));
}

/** What the budget sets aside once per sink for compressing pieces: a compressor per slot (none without `parallelGzip`). */
export function reservedBytes(maxBufferedBytes: number, parallelGzip: boolean): number {
  return parallelGzip ? pieceSlots(maxBufferedBytes) * COMPRESSOR_BYTES : 0;
}

/**
 * What a streaming batch is charged for compressing, beyond its bytes: a
 * compressor of its own, or, compressed in pieces (whose compressors are the
 * sink's, set aside once), the 32 KiB tail it keeps as its next piece's
 * dictionary.
 */
export function compressorBytes(parallelGzip: boolean): number {
  return parallelGzip ? DICTIONARY_BYTES : COMPRESSOR_BYTES;
}

export type Decision = 'admit' | 'wait' | 'close';

/**
 * May `need` more bytes come in now?
 * - `admit` when they fit, or when nothing is held (one event larger than the budget still passes).
 * - `wait` when enough will be released without closing anything: `draining`
 *   counts bytes of closed batches and of full parts already handed to S3.
 * - `close` otherwise: the budget is full of batches that cannot make a part
 *   yet, so the caller closes the largest open one (it becomes draining).
 */
export function decide(held: number, max: number, need: number, draining: () => number): Decision {
  if (held + need <= max || held === 0) return 'admit';
  // Only now: counting what drains looks at every batch.
  if (held + need - max <= draining()) return 'wait';
  return 'close';
}

interface Entry {
  held: number;
  closed: boolean;
  /** Bytes in full parts handed to S3, not yet acknowledged. */
  inParts: number;
}

export class Ledger {
  /** Room for batches' bytes: the budget less what is set aside (`reserved`). */
  readonly max: number;
  /** Bytes of the budget set aside once for the sink (the compressors of pieces in flight), never charged to a batch. */
  readonly reserved: number;
  #held = 0;
  #peak = 0;
  /** What `draining()` returns, kept as entries change: a scan of every batch cost O(batches) per admitted line at wide fan-out. */
  #draining = 0;
  readonly #entries = new Map<string, Entry>();
  #waiters: (() => void)[] = [];
  /**
   * Set by `gzip` (without a spool): compresses held lines of open batches
   * into gzip members, so that they take less of the budget without being
   * closed. See `compact`.
   */
  compactor: ((need: number) => boolean) | null = null;

  /** `budget`: `maxBufferedBytes`; `reserved`: the part of it set aside (see `reservedBytes`), less than `budget`. */
  constructor(budget: number, reserved = 0) {
    this.max = budget - reserved;
    this.reserved = reserved;
  }

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** The most ever held at once. */
  get peak(): number {
    return this.#peak;
  }

  heldBy(batch: BatchRef): number {
    return this.#entries.get(batch.key)?.held ?? 0;
  }

  /** `window`: `n` more bytes for `batch`. */
  charge(batch: BatchRef, n: number): void {
    const entry = this.#entry(batch);
    this.#draining -= drains(entry);
    entry.held += n;
    this.#draining += drains(entry);
    this.#held += n;
    if (this.#held > this.#peak) this.#peak = this.#held;
  }

  /**
   * `gzip`: `raw` line bytes of `batch` became `compressed` bytes. Only `window`
   * may raise the total, after checking the budget, so a conversion never does:
   * gzip's framing (about 20 bytes an object, and 0.03 % of incompressible
   * data) goes uncounted rather than push the total past the budget.
   */
  convert(batch: BatchRef, raw: number, compressed: number): void {
    const delta = compressed - raw;
    const entry = this.#entries.get(batch.key);
    if (!entry || delta >= 0) {
      // Still a wake-up: `window` may wait for a compaction that did not shrink its lines (incompressible), and then closes batches.
      this.#notify();
      return;
    }
    this.#draining -= drains(entry);
    entry.held += delta;
    this.#draining += drains(entry);
    this.#held += delta;
    this.#notify();
  }

  /** `upload`: `n` compressed bytes of `batch` are in S3. */
  release(batch: BatchRef, n: number): void {
    const entry = this.#entries.get(batch.key);
    if (!entry || n <= 0) return;
    const freed = Math.min(n, entry.held);
    this.#draining -= drains(entry);
    entry.held -= freed;
    entry.inParts = Math.max(0, entry.inParts - freed);
    this.#draining += drains(entry);
    this.#held -= freed;
    this.#notify();
  }

  /** `upload`: the batch's object is complete (or given up); everything it held is freed. */
  settle(batch: BatchRef): void {
    const entry = this.#entries.get(batch.key);
    if (!entry) return;
    this.#entries.delete(batch.key);
    this.#draining -= drains(entry);
    this.#held -= entry.held;
    this.#notify();
  }

  /** `window`: no more bytes will come for `batch`; all it holds will drain. */
  markClosed(batch: BatchRef): void {
    const entry = this.#entry(batch);
    this.#draining -= drains(entry);
    entry.closed = true;
    this.#draining += drains(entry);
  }

  /** `upload`: `n` bytes of `batch` are in full parts on their way to S3. */
  setInParts(batch: BatchRef, n: number): void {
    const entry = this.#entries.get(batch.key);
    if (!entry) return;
    this.#draining -= drains(entry);
    entry.inParts = n;
    this.#draining += drains(entry);
  }

  /** Bytes that will be released without closing another batch: those of closed batches, and of full parts on their way. */
  readonly draining = (): number => this.#draining;

  /**
   * `window`, when the budget is full of open batches that cannot make a
   * part: asks for `need` bytes (and some room beyond) by compressing held
   * lines instead of closing batches. `true` when compression is under way
   * (a conversion will release bytes: wait for it); `false` when there is
   * nothing to compress (close batches instead).
   */
  compact(need: number): boolean {
    return this.compactor?.(need) ?? false;
  }

  /** Resolves at the next release (or `wake`). */
  released(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * The sink is destroyed: nothing it held is buffered any more, including
   * what no stage will settle (a batch still in `window` or `gzip`, which
   * `upload` never saw). Later calls for those batches find no entry.
   */
  clear(): void {
    this.#entries.clear();
    this.#held = 0;
    this.#draining = 0;
    this.#notify();
  }

  /** Resolves every `released()` promise (on destroy, so no loop waits forever). */
  wake(): void {
    this.#notify();
  }

  #entry(batch: BatchRef): Entry {
    let entry = this.#entries.get(batch.key);
    if (!entry) {
      entry = { held: 0, closed: false, inParts: 0 };
      this.#entries.set(batch.key, entry);
    }
    return entry;
  }

  #notify(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** What an entry adds to `draining()`. */
function drains(entry: Entry): number {
  return entry.closed ? entry.held : Math.min(entry.held, entry.inParts);
}
