import { Duplex } from 'node:stream';
import { availableParallelism } from 'node:os';
import zlib from 'node:zlib';
import type { Batch, BytesPiece } from '../batch.js';
import type { SinkContext } from '../context.js';

/**
 * Stage 5: arrays of `BytesPiece` (lines) → `BytesPiece`s (gzip), one at a time.
 *
 * All compression runs on libuv's thread pool, never on the main thread, and
 * different batches compress in parallel:
 * - a batch that `window` marked `streaming` gets a gzip stream of its own, fed
 *   as its bytes arrive, so its parts can go to S3 while its window is open;
 * - a smaller batch is held as it is and compressed in one `zlib.gzip` call when it ends.
 *
 * Each object is one gzip member. Backpressure: when the next stage is full,
 * every gzip stream pauses; their buffers fill; writes here wait for them.
 */
export function gzip(ctx: SinkContext): Gzip {
  return new Gzip(ctx);
}

const CHUNK = 64 * 1024;
/** One-shot compressions running at once: enough to keep libuv's thread pool busy. */
const ONE_SHOTS_AT_ONCE = Math.max(4, availableParallelism());
/** Output deflate can still emit for input it has consumed (its pending block), at most; one output chunk. */
const IN_DEFLATE = CHUNK;

interface State {
  batch: Batch;
  pending: Buffer[];
  pendingBytes: number;
  stream: zlib.Gzip | null;
  /** Input bytes `stream` has consumed, as last seen. */
  consumed: number;
  /** Consumed input not yet released from the budget. */
  credit: number;
  /** Its end came; compression is finishing. */
  ended: boolean;
}

export class Gzip extends Duplex {
  readonly #ctx: SinkContext;
  readonly #states = new Map<Batch, State>();
  #paused = false;
  #oneShots = 0;
  readonly #oneShotQueue: State[] = [];
  #onFinished: (() => void) | null = null;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 8 });
    this.#ctx = ctx;
  }

  override _write(pieces: BytesPiece[], _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const full = new Set<zlib.Gzip>();
    for (const piece of pieces) {
      if ('end' in piece) {
        this.#end(piece.batch);
        continue;
      }
      const state = this.#state(piece.batch);
      if (state.stream === null && piece.batch.streaming) this.#startStream(state);
      if (state.stream !== null) {
        if (!state.stream.write(piece.data)) full.add(state.stream);
      } else {
        state.pending.push(piece.data);
        state.pendingBytes += piece.data.length;
      }
    }
    // An ended stream emits no 'drain' (its end flushes it anyway): wait only for open ones.
    for (const stream of full) if (stream.writableEnded) full.delete(stream);
    if (full.size === 0) {
      callback();
      return;
    }
    let waiting = full.size;
    for (const stream of full) {
      stream.once('drain', () => {
        if (--waiting === 0) callback();
      });
    }
  }

  override _read(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const { stream } of this.#states.values()) stream?.resume();
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Batches the chain never ended (a hand-built chain without `window`) end here.
    for (const state of [...this.#states.values()]) if (!state.ended) this.#end(state.batch);
    this.#onFinished = () => {
      this.push(null);
      callback();
    };
    this.#maybeFinished();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    for (const { stream } of this.#states.values()) stream?.destroy();
    this.#states.clear();
    callback(error);
  }

  #state(batch: Batch): State {
    let state = this.#states.get(batch);
    if (!state) {
      state = { batch, pending: [], pendingBytes: 0, stream: null, consumed: 0, credit: 0, ended: false };
      this.#states.set(batch, state);
    }
    return state;
  }

  #startStream(state: State): void {
    const stream = zlib.createGzip({ level: this.#ctx.options.gzipLevel, chunkSize: CHUNK });
    state.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      state.credit += stream.bytesWritten - state.consumed;
      state.consumed = stream.bytesWritten;
      // Input deflate has consumed may still come out later (its pending block):
      // keep IN_DEFLATE of it charged until the stream ends.
      const released = Math.min(state.credit, Math.max(chunk.length, state.credit - IN_DEFLATE));
      state.credit -= released;
      this.#emit(state.batch, released, chunk);
    });
    stream.once('end', () => {
      this.#ctx.ledger.convert(state.batch, state.credit + stream.bytesWritten - state.consumed, 0);
      this.#finish(state.batch);
    });
    stream.once('error', (err) => this.destroy(err));
    if (this.#paused) stream.pause();
    if (state.pendingBytes > 0) {
      stream.write(state.pending.length === 1 ? state.pending[0] : Buffer.concat(state.pending, state.pendingBytes));
      state.pending = [];
      state.pendingBytes = 0;
    }
  }

  #end(batch: Batch): void {
    const state = this.#states.get(batch);
    if (!state) {
      this.push({ batch, end: true });
      return;
    }
    state.ended = true;
    if (state.stream !== null) {
      state.stream.end();
      return;
    }
    this.#oneShotQueue.push(state);
    this.#runOneShots();
  }

  /**
   * Compresses ended small batches in one call each, a few at a time: each
   * call holds a compressor's memory while it runs, and thousands of batches
   * can end at the same instant (a window closing over a wide fan-out).
   */
  #runOneShots(): void {
    while (this.#oneShots < ONE_SHOTS_AT_ONCE && this.#oneShotQueue.length > 0) {
      const state = this.#oneShotQueue.shift() as State;
      const { batch } = state;
      const raw = state.pending.length === 1 ? (state.pending[0] as Buffer) : Buffer.concat(state.pending, state.pendingBytes);
      state.pending = [];
      this.#oneShots += 1;
      zlib.gzip(raw, { level: this.#ctx.options.gzipLevel }, (err, compressed) => {
        this.#oneShots -= 1;
        if (this.destroyed) return;
        if (err) {
          this.destroy(err);
          return;
        }
        this.#emit(batch, raw.length, compressed);
        this.#finish(batch);
        this.#runOneShots();
      });
    }
  }

  #emit(batch: Batch, raw: number, compressed: Buffer): void {
    this.#ctx.ledger.convert(batch, raw, compressed.length);
    if (!this.push({ batch, data: compressed }) && !this.#paused) {
      this.#paused = true;
      for (const { stream } of this.#states.values()) stream?.pause();
    }
  }

  #finish(batch: Batch): void {
    this.#states.delete(batch);
    this.push({ batch, end: true });
    this.#maybeFinished();
  }

  #maybeFinished(): void {
    if (this.#onFinished && this.#states.size === 0 && this.#oneShots === 0 && this.#oneShotQueue.length === 0) {
      const done = this.#onFinished;
      this.#onFinished = null;
      done();
    }
  }
}
