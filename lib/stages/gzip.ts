import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import type { Batch, BytesPiece, End } from '../batch.js';
import { BlockPool, GrowingBlocks } from '../blocks.js';
import { compressOnce } from '../compressOnce.js';
import { whenWritable } from '../streams.js';
import type { SinkContext } from '../context.js';
import { DICTIONARY_BYTES, gzipHeader, MemberSum, pieceEnd, pieceOptions, takeFront } from '../gzipPieces.js';
import { PartPool } from '../parts.js';
import { PARALLEL_PIECES } from '../ledger.js';
import type { PiecePool } from '../piecePool.js';
import { gzipBound } from '../options.js';
import { Slabs } from '../slabs.js';

/**
 * Stage 5: arrays of `BytesPiece` (lines) → `BytesPiece`s (gzip), one at a time.
 *
 * All compression runs on libuv's thread pool, never on the main thread, and
 * different batches compress in parallel:
 * - a batch that `window` marked `streaming` gets a gzip stream of its own, fed
 *   as its bytes arrive, so its parts can go to S3 while its window is open;
 * - a smaller batch is held (its pieces copied together into a few blocks,
 *   see blocks.ts) and compressed in one `zlib.gzip` call when it ends (a few
 *   such calls at a time);
 * - with `parallelGzip` (the default), a streaming batch is instead cut into
 *   pieces of `MEMBER_BYTES`, compressed by several threads at once (each
 *   primed with the 32 KiB before it) and written in order as ONE gzip member
 *   (see gzipPieces.ts): one hot destination can use every core, and the
 *   object is one deflate stream that every gzip reader reads whole. The
 *   pieces of all batches share the sink's slots (`ctx.pieces`, piecePool.ts):
 *   however many destinations are hot, no more than that many compress at once.
 * - when the memory budget is full of small batches' lines (wide fan-out),
 *   `window` asks the ledger to compact, and the largest small batches held
 *   here have their lines compressed into a piece each (a few at a time),
 *   instead of being closed early: the batch stays open, its object gets one
 *   more piece of its one member, and the budget is charged the compressed
 *   bytes. Not with a spool: a batch delivered again from its segment must be
 *   the same bytes, and pieces cut where the budget happened to fill could
 *   not be.
 *
 * Backpressure: when the next stage is full, every gzip stream pauses; their
 * buffers fill; writes here wait for them (or, while pieces wait for a slot,
 * until none does).
 */
export function gzip(ctx: SinkContext): Gzip {
  return new Gzip(ctx);
}

const CHUNK = 64 * 1024;
/** A streaming batch's bytes are written to its gzip stream in pieces of about this size. */
const WRITE_BYTES = 256 * 1024;
/** With `parallelGzip`: the uncompressed size of one gzip member. */
export const MEMBER_BYTES = 1024 * 1024;
/** One-shot compressions running at once: enough to keep libuv's thread pool busy. */
const ONE_SHOTS_AT_ONCE = Math.max(4, PARALLEL_PIECES);
/** Largest output buffer of a one-shot compression (a member, or a small batch). */
const ONE_SHOT_OUTPUT = 256 * 1024;
/** Smallest output buffer of a compaction, sized from the ratio seen (`#oneShotOptions`). */
const MIN_OUTPUT = 16 * 1024;
/** Output deflate can still emit for input it has consumed (its pending block), at most; one output chunk. */
const IN_DEFLATE = CHUNK;
/** A small batch holding fewer line bytes than this is not compacted into a piece (it would compress poorly). */
export const COMPACT_MIN_BYTES = 4 * 1024;
/** A compacted batch that keeps growing is compressed into a piece each time it holds this much. */
const COMPACT_MEMBER_BYTES = MEMBER_BYTES;
/** Blocks kept for the next small batches (see blocks.ts), at most: this, or an eighth of the budget. */
const FREE_BLOCK_BYTES = 8 * 1024 * 1024;
/**
 * A one-shot compression of at most this many bytes runs here, on the main
 * thread, not in libuv's thread pool: a trip to the pool costs more than
 * compressing a few KiB. Measured on 2 vCPUs, level 6, CPU per call (main
 * thread / all threads): 2 KiB of log lines 68 / 218 µs through the pool,
 * 48 / 50 µs here; 4 KiB 60 / 212 against 71 / 70; 8 KiB 64 / 273 against
 * 117 / 137. A wide fan-out closes thousands of such batches.
 */
const SYNC_BYTES = 4 * 1024;
/**
 * Compressions on the main thread in one turn of the event loop, at most
 * (about 5–10 ms of CPU on an idle core; a review measured rounds of 128 of
 * 3.3 KiB holding the loop 48–64 ms on this shared machine), and for at
 * most SYNC_TURN_MS: the rest wait for the next turn.
 */
const SYNC_TURN_CALLS = 128;
const SYNC_TURN_MS = 5;

/** The pieces of a batch compressed apart (see gzipPieces.ts): one gzip member. */
interface Members {
  submitted: number;
  emitted: number;
  done: Map<number, { raw: number; data: Buffer }>;
  /** CRC-32 and length of the pieces submitted (in order). */
  sum: MemberSum;
  /** The last DICTIONARY_BYTES of the pieces submitted: the next one's dictionary. */
  tail: Buffer | undefined;
}

interface State {
  batch: Batch;
  /** The acks of its lines so far; they leave with its end. */
  acks: unknown[] | null;
  pending: Buffer[];
  pendingBytes: number;
  /** The pieces of a batch that does not stream (yet), copied (see blocks.ts): they come before `pending`. */
  blocks: GrowingBlocks;
  /** Its end came; compression is finishing. */
  ended: boolean;
  /** Streaming: its gzip stream. */
  stream: zlib.Gzip | null;
  /** Streaming: input bytes `stream` has consumed, as last seen. */
  consumed: number;
  /** Streaming: consumed input not yet released from the budget. */
  credit: number;
  /** Streaming with `parallelGzip`: its members. */
  members: Members | null;
  /** Compacted (its lines compressed into members when the budget filled): its members, compressed one-shot and written in order. */
  compacted: Members | null;
  /** In the one-shot queue (or running): compaction runs, and the final run after its end. */
  queued: number;
}

/** A one-shot compression waiting its turn: the batch's pending lines, as a member (`final`: its last, after its end). */
interface OneShot {
  state: State;
  final: boolean;
  /** A compaction: the line bytes it was counted for in `#compacting`. */
  counted: number;
}

type Wait = (done: () => void) => void;

export class Gzip extends Duplex {
  readonly #ctx: SinkContext;
  /** By batch key. */
  readonly #states = new Map<string, State>();
  #paused = false;
  #oneShots = 0;
  readonly #oneShotQueue: OneShot[] = [];
  /** `#runOneShots` is on the stack (a compression done on the main thread calls back inside it). */
  #runningOneShots = false;
  /** Compressions done on the main thread in this turn of the event loop, since when, and the immediate that ends the turn's count. */
  #syncCalls = 0;
  #syncSince = 0;
  #syncTurnEnd: NodeJS.Immediate | null = null;
  /** One-shots waiting for the next turn (this turn had its round of compressions on the main thread). */
  #oneShotsLater: NodeJS.Immediate | null = null;
  /** Line bytes of compactions queued or running (expected to shrink soon). */
  #compacting = 0;
  #onFinished: (() => void) | null = null;
  readonly #resumeWaiters: (() => void)[] = [];
  /** The buffers pieces are copied into, used again once compressed: one per slot, and one being filled. */
  readonly #pieceBuffers: PartPool;
  /** The buffers a compaction's lines are joined into (when they lie in several blocks), used again once compressed: one per compaction running. */
  readonly #oneShotBuffers = new PartPool(MEMBER_BYTES, ONE_SHOTS_AT_ONCE);
  /** The blocks small batches' pieces are copied into, used again once their bytes were copied out or compressed. */
  readonly #blockPool: BlockPool;
  /** Where small compressed bytes are copied to wait for their upload (see slabs.ts), and the gzip header copied from. */
  readonly #slabs = new Slabs();
  readonly #header: Buffer;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 8 });
    this.#ctx = ctx;
    this.#pieceBuffers = new PartPool(MEMBER_BYTES, (ctx.pieces?.slots ?? 0) + 1);
    this.#blockPool = new BlockPool(Math.min(FREE_BLOCK_BYTES, ctx.options.maxBufferedBytes / 8));
    this.#header = gzipHeader(ctx.options.gzipLevel);
    if (ctx.spool === null) ctx.ledger.compactor = (need) => this.#compact(need);
  }

  override _write(pieces: BytesPiece[], _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const full = new Set<zlib.Gzip>();
    let members = false;
    for (const piece of pieces) {
      if ('end' in piece) {
        this.#end(piece);
        continue;
      }
      const state = this.#state(piece.batch);
      if (piece.acks) {
        state.acks ??= [];
        for (const ack of piece.acks) state.acks.push(ack);
      }
      if (piece.batch.streaming) {
        this.#unblock(state);
        state.pending.push(piece.data);
      } else {
        state.blocks.append(piece.data);
      }
      state.pendingBytes += piece.data.length;
      if (state.compacted !== null) {
        // Compacted once: it goes on in members, whether or not it has grown into a streaming batch.
        if (state.pendingBytes >= COMPACT_MEMBER_BYTES && state.queued === 0) this.#queueOneShot(state, false);
        continue;
      }
      if (!piece.batch.streaming) continue;
      if (this.#ctx.pieces !== null) {
        state.members ??= { submitted: 0, emitted: 0, done: new Map(), sum: new MemberSum(), tail: undefined };
        members = true;
        if (state.pendingBytes >= MEMBER_BYTES) this.#cutPieces(state, false);
        continue;
      }
      if (state.stream === null) this.#startStream(state);
      // Few large writes: each write to a gzip stream is a trip to the thread pool.
      if (state.pendingBytes >= WRITE_BYTES && !this.#feed(state)) full.add(state.stream as zlib.Gzip);
    }
    const waits: Wait[] = [];
    // An ended stream emits no 'drain' (its end flushes it anyway): wait only for open ones.
    for (const stream of full) if (!stream.writableEnded) waits.push((done) => whenWritable([stream], done));
    // Pieces (of any batch) wait for a slot: take no more until they all have one.
    const pool = this.#ctx.pieces;
    if (pool !== null && pool.waiting > 0) waits.push((done) => pool.whenNoneWaiting(done));
    // Members finish whatever the next stage is doing: while it is full, take no more.
    if (members && this.#paused) waits.push((done) => this.#resumeWaiters.push(done));
    let waiting = waits.length;
    if (waiting === 0) {
      callback();
      return;
    }
    for (const wait of waits) wait(() => --waiting === 0 && callback());
  }

  override _read(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const { stream } of this.#states.values()) stream?.resume();
    this.#resumeWaiters.splice(0).forEach((wake) => wake());
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Batches the chain never ended (a hand-built chain without `window`) end here.
    for (const state of [...this.#states.values()]) if (!state.ended) this.#end({ batch: state.batch, end: true });
    this.#onFinished = () => {
      this.push(null);
      callback();
    };
    this.#maybeFinished();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#oneShotsLater !== null) clearImmediate(this.#oneShotsLater);
    if (this.#syncTurnEnd !== null) clearImmediate(this.#syncTurnEnd);
    this.#oneShotsLater = null;
    this.#syncTurnEnd = null;
    for (const { stream } of this.#states.values()) stream?.destroy();
    this.#states.clear();
    if (this.#ctx.ledger.compactor !== null) this.#ctx.ledger.compactor = null;
    callback(error);
  }

  #state(batch: Batch): State {
    let state = this.#states.get(batch.key);
    if (!state) {
      state = { batch, acks: null, pending: [], pendingBytes: 0, blocks: new GrowingBlocks(this.#blockPool), ended: false, stream: null, consumed: 0, credit: 0, members: null, compacted: null, queued: 0 };
      this.#states.set(batch.key, state);
    }
    return state;
  }

  /**
   * What the batch has pending, as one buffer. With `into` (a pool of
   * buffers given back once their bytes are compressed: compactions, which
   * run only while the budget is full, so the pool is not let go between
   * them), lines that lie in several blocks are joined into one of its
   * buffers when they fit, not a new one: at 1 000 destinations each
   * compaction joined about 76 KiB, 200 MiB of garbage per 200 MiB of input.
   */
  #takePending(state: State, into?: PartPool): Buffer {
    this.#unblock(state);
    const pending = state.pending;
    const data = pending.length === 1 ? (pending[0] as Buffer) : into !== undefined && state.pendingBytes > 0 && state.pendingBytes <= into.size ? takeFront(pending.slice(), state.pendingBytes, into.take()) : Buffer.concat(pending, state.pendingBytes);
    // Copied out: the blocks among them can be used again.
    if (pending.length > 1) for (const copied of pending) this.#blockPool.give(copied);
    state.pending = [];
    state.pendingBytes = 0;
    return data;
  }

  /** The batch's copied pieces go to the front of `pending`. */
  #unblock(state: State): void {
    if (state.blocks.held === 0) return;
    const copied = state.blocks.take();
    for (const data of state.pending) copied.push(data);
    state.pending = copied;
  }

  #startStream(state: State): void {
    // A queue of writes: when one is done the next starts at once, and the
    // thread compressing this batch does not wait on the main thread's turn.
    const stream = zlib.createGzip({ level: this.#ctx.options.gzipLevel, chunkSize: CHUNK, writableHighWaterMark: 4 * WRITE_BYTES } as zlib.ZlibOptions);
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
      this.#finish(state);
    });
    stream.once('error', (err) => this.destroy(err));
    if (this.#paused) stream.pause();
  }

  /** Writes what the batch has pending to its gzip stream; `false` when the stream asks to wait. */
  #feed(state: State): boolean {
    return (state.stream as zlib.Gzip).write(this.#takePending(state));
  }

  /**
   * Cuts what the batch has pending into pieces and hands them to the sink's
   * pool (they compress as slots free); with `all`, the last bytes too. A
   * piece ends at the last line end within MEMBER_BYTES of input (or the
   * first after, for a longer line): the cuts depend only on the bytes, never
   * on how they arrived or on free slots, so a batch delivered again from the
   * spool makes the same pieces, and the same object.
   */
  #cutPieces(state: State, all: boolean): void {
    this.#unblock(state);
    const pending = state.pending;
    for (let end = pieceEnd(pending, state.pendingBytes, MEMBER_BYTES, all); end > 0; end = pieceEnd(pending, state.pendingBytes, MEMBER_BYTES, all)) {
      // Copied out of the lines into a buffer used again (a longer piece, one line past MEMBER_BYTES, gets its own).
      const raw = takeFront(pending, end, end <= MEMBER_BYTES ? this.#pieceBuffers.take() : Buffer.allocUnsafeSlow(end));
      state.pendingBytes -= end;
      this.#submitPiece(state, raw);
    }
    if (pending.length > 0) pending[0] = rest(pending[0] as Buffer);
  }

  /** Queues `raw` as the batch's next piece (its dictionary and checksum taken now, in order); pieces are written in order, after the member's header. */
  #submitPiece(state: State, raw: Buffer): void {
    const members = state.members as Members;
    const pool = this.#ctx.pieces as PiecePool;
    const seq = members.submitted++;
    const level = this.#ctx.options.gzipLevel;
    const options = pieceOptions(level, members.tail, this.#oneShotOptions(raw).chunkSize);
    members.sum.add(raw);
    members.tail = Buffer.from(raw.subarray(Math.max(0, raw.length - DICTIONARY_BYTES)));
    pool.run((slotFree) => {
      if (this.destroyed) {
        slotFree();
        return;
      }
      compressOnce('deflateRaw', raw, options, (err, compressed) => {
        slotFree();
        this.#pieceBuffers.give(raw);
        if (this.destroyed) return;
        if (err) {
          this.destroy(err);
          return;
        }
        this.#pieceDone(state.batch, members, seq, raw.length, compressed);
        if (state.ended && state.pendingBytes === 0 && members.emitted === members.submitted) this.#finishMembers(state, members);
      });
    });
  }

  /** Piece `seq` is compressed: it and the pieces after it already done are written, in order, after the member's header. */
  #pieceDone(batch: Batch, members: Members, seq: number, raw: number, compressed: Buffer): void {
    members.done.set(seq, { raw, data: this.#keep(compressed) });
    for (let next = members.done.get(members.emitted); next; next = members.done.get(members.emitted)) {
      if (members.emitted === 0) this.#emit(batch, 0, this.#slabs.copy(this.#header));
      members.done.delete(members.emitted++);
      this.#emit(batch, next.raw, next.data);
    }
  }

  /** Every piece is written: the member's end (final block and trailer), then the batch's. */
  #finishMembers(state: State, members: Members): void {
    if (members.emitted === 0) this.#emit(state.batch, 0, this.#slabs.copy(this.#header));
    this.#emit(state.batch, 0, members.sum.end());
    this.#finish(state);
  }

  #end(end: End): void {
    const state = this.#states.get(end.batch.key);
    if (!state) {
      this.push(end);
      return;
    }
    if (end.acks) {
      state.acks ??= [];
      for (const ack of end.acks) state.acks.push(ack);
    }
    state.ended = true;
    if (state.members !== null) {
      if (state.pendingBytes > 0) this.#cutPieces(state, true);
      if (state.pendingBytes === 0 && state.members.emitted === state.members.submitted) this.#finishMembers(state, state.members);
      return;
    }
    if (state.stream !== null) {
      if (state.pendingBytes > 0) this.#feed(state);
      state.stream.end();
      return;
    }
    this.#queueOneShot(state, true);
  }

  /**
   * The ledger's compactor (`window` calls it when the budget is full of open
   * batches that cannot make a part): queues the largest small batches'
   * lines for compression into a member each, until what is queued covers
   * `need` plus an eighth of the budget. `false` when there is nothing worth
   * compacting (the caller closes batches instead).
   */
  #compact(need: number): boolean {
    if (this.destroyed) return false;
    const target = need + this.#ctx.ledger.max / 8;
    if (this.#compacting >= target) return true;
    const candidates: State[] = [];
    for (const state of this.#states.values()) {
      if (!state.ended && state.stream === null && state.members === null && state.queued === 0 && state.pendingBytes >= COMPACT_MIN_BYTES) candidates.push(state);
    }
    candidates.sort((a, b) => b.pendingBytes - a.pendingBytes);
    let queued = false;
    for (const state of candidates) {
      if (this.#compacting >= target) break;
      this.#queueOneShot(state, false);
      queued = true;
    }
    return queued || this.#compacting > 0;
  }

  #queueOneShot(state: State, final: boolean): void {
    const counted = final ? 0 : state.pendingBytes;
    if (!final) state.compacted ??= { submitted: 0, emitted: 0, done: new Map(), sum: new MemberSum(), tail: undefined };
    this.#compacting += counted;
    state.queued += 1;
    this.#oneShotQueue.push({ state, final, counted });
    this.#runOneShots();
  }

  /**
   * Compresses ended small batches in one call each, and compacted batches'
   * members, a few at a time: each call holds a compressor's memory while it
   * runs, and thousands of batches can end at the same instant (a window
   * closing over a wide fan-out).
   */
  #runOneShots(): void {
    if (this.#runningOneShots || this.#oneShotsLater !== null) return;
    this.#runningOneShots = true;
    try {
      this.#runOneShotsNow();
    } finally {
      this.#runningOneShots = false;
    }
  }

  #runOneShotsNow(): void {
    while (!this.destroyed && this.#oneShots < ONE_SHOTS_AT_ONCE && this.#oneShotQueue.length > 0) {
      if (this.#syncCalls >= SYNC_TURN_CALLS || (this.#syncCalls > 0 && performance.now() - this.#syncSince >= SYNC_TURN_MS)) {
        // Thousands of small batches can end at once: the event loop gets a turn between rounds of them.
        this.#oneShotsLater = setImmediate(() => {
          this.#oneShotsLater = null;
          if (!this.destroyed) this.#runOneShots();
        });
        return;
      }
      const { state, counted: expected } = this.#oneShotQueue.shift() as OneShot;
      const { batch, compacted } = state;
      // What was queued as a member's lines may have grown since (all of it goes in), or is gone (taken by an earlier run).
      const raw = this.#takePending(state, compacted === null ? undefined : this.#oneShotBuffers);
      if (compacted === null) {
        if (raw.length <= SYNC_BYTES) {
          if (this.#syncCalls++ === 0) this.#syncSince = performance.now();
          this.#syncTurnEnd ??= setImmediate(() => {
            this.#syncTurnEnd = null;
            this.#syncCalls = 0;
          });
        }
        // Never compacted: the whole batch in one member.
        this.#oneShots += 1;
        gzipOneShot(raw, this.#oneShotOptions(raw), (err, compressed) => {
          this.#oneShots -= 1;
          this.#blockPool.give(raw); // compressed: a block can be used again
          state.queued -= 1;
          if (this.destroyed) return;
          if (err) {
            this.destroy(err);
            return;
          }
          this.#emit(batch, raw.length, this.#keep(compressed));
          this.#finish(state);
          this.#runOneShots();
        });
        continue;
      }
      if (raw.length === 0) {
        this.#compacting -= expected;
        state.queued -= 1;
        this.#afterMember(state);
        continue;
      }
      const seq = compacted.submitted++;
      this.#oneShots += 1;
      // A piece of the batch's one member (no dictionary: thousands of batches may be compacted at once).
      compacted.sum.add(raw);
      compressOnce('deflateRaw', raw, pieceOptions(this.#ctx.options.gzipLevel, undefined, this.#oneShotOptions(raw, true).chunkSize), (err, compressed) => {
        this.#oneShots -= 1;
        // Compressed: a block, or the buffer its blocks were joined into, can be used again.
        this.#blockPool.give(raw);
        this.#oneShotBuffers.give(raw);
        state.queued -= 1;
        this.#compacting -= expected;
        if (this.destroyed) return;
        if (err) {
          this.destroy(err);
          return;
        }
        this.#learn(raw.length, compressed.length);
        this.#pieceDone(batch, compacted, seq, raw.length, compressed);
        this.#afterMember(state);
        this.#runOneShots();
      });
    }
  }

  /** A compacted batch's piece is done (or had nothing to take): it finishes once ended with every piece written. */
  #afterMember(state: State): void {
    const compacted = state.compacted as Members;
    if (state.ended && state.queued === 0 && state.pendingBytes === 0 && compacted.emitted === compacted.submitted) this.#finishMembers(state, compacted);
  }

  /**
   * Output buffers of up to ONE_SHOT_OUTPUT: with the default 16 KiB, a 1 MiB
   * call makes a dozen trips between the thread pool and the main thread,
   * and the main thread becomes the bottleneck.
   *
   * A compaction's (`learned`) is sized from the ratio compactions have had
   * lately, not for the worst case: at 1 000 destinations buffers as large
   * as their input were 224 MiB of garbage per 200 MiB, for outputs about a
   * sixth of that. Only a compaction's: a piece's bytes, and at level 0 a
   * whole batch's, depend on the size of zlib's output buffer (a sync flush
   * that fills it exactly is followed by a second empty block; stored
   * blocks are cut where it fills), and a batch delivered again from the
   * spool must be the same bytes whatever the process compressed before.
   * Compactions never run with a spool.
   */
  #oneShotOptions(raw: Buffer, learned = false): zlib.ZlibOptions {
    // On the main thread, one output buffer that fits the result (zlib's smallest is 64 bytes); Node's pool serves the small ones.
    const worst = Math.min(ONE_SHOT_OUTPUT, Math.max(CHUNK, gzipBound(raw.length)));
    // A learned size is at least an eighth of the input: an incompressible compaction after many compressible ones takes at most a few more trips.
    const chunkSize = raw.length <= SYNC_BYTES ? Math.max(zlib.constants.Z_MIN_CHUNK, gzipBound(raw.length)) : learned ? Math.min(worst, Math.max(MIN_OUTPUT, raw.length >> 3, Math.ceil(raw.length * this.#ratio * 1.25))) : worst;
    return { level: this.#ctx.options.gzipLevel, chunkSize };
  }

  /** Compressed ÷ raw of compactions, on average (recent ones weigh most). */
  #ratio = 1;

  #learn(raw: number, compressed: number): void {
    this.#ratio += (compressed / raw - this.#ratio) / 8;
  }

  /**
   * A one-shot result is a slice of zlib's output buffer: a 2 KiB object would
   * keep 64 KiB alive until it is uploaded. Copied when more than an eighth of
   * the buffer is waste: a 1 MiB piece of log lines compresses to about
   * 150 KiB in a 256 KiB buffer, and the upload stage holds up to a part's
   * worth of them (8 MiB) before it copies them into the part, so uncopied they could
   * keep about 5 MiB more alive per uploading destination. A copy costs a
   * memcpy of compressed bytes. Small ones are copied into slabs of their own
   * (slabs.ts), not Node's shared pool.
   */
  #keep(data: Buffer): Buffer {
    return data.buffer.byteLength - data.length > data.buffer.byteLength / 8 ? this.#slabs.copy(data) : data;
  }

  #emit(batch: Batch, raw: number, compressed: Buffer): void {
    this.#ctx.ledger.convert(batch, raw, compressed.length);
    if (!this.push({ batch, data: compressed }) && !this.#paused) {
      this.#paused = true;
      for (const { stream } of this.#states.values()) stream?.pause();
    }
  }

  #finish(state: State): void {
    this.#states.delete(state.batch.key);
    // Nothing compresses in pieces now: the kept piece buffers go (a quiet sink holds none).
    if (this.#states.size === 0) {
      this.#pieceBuffers.clear();
      this.#oneShotBuffers.clear();
      this.#blockPool.clear();
      this.#slabs.release();
    }
    this.push(state.acks ? { batch: state.batch, end: true, acks: state.acks } : { batch: state.batch, end: true });
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

/**
 * `zlib.gzip` (as `compressOnce`), or for at most SYNC_BYTES `zlib.gzipSync` here, with `done`
 * called before it returns (an error too, as the callback would get it).
 * Only for a whole batch that has ended: its bytes are released from the
 * budget at once, while whoever waits for a release (window) set up its wait
 * before pushing the end. A compaction's members stay in the pool: `window`
 * waits for their release after asking for them.
 */
function gzipOneShot(raw: Buffer, options: zlib.ZlibOptions, done: (err: Error | null, compressed: Buffer) => void): void {
  if (raw.length > SYNC_BYTES) {
    compressOnce('gzip', raw, options, done);
    return;
  }
  let compressed: Buffer;
  try {
    compressed = zlib.gzipSync(raw, options);
  } catch (err) {
    done(err as Error, Buffer.alloc(0));
    return;
  }
  done(null, compressed);
}

/**
 * What is left of a buffer pieces were cut from: copied when it is the
 * smaller part, so that the bytes cut (soon compressed, and released from
 * the budget) are not kept alive by it while the batch waits for more. A
 * batch that goes quiet (event time: a past minute's batch, open until it is
 * closed) held up to a piece's worth that way, outside the budget: with
 * `--time-field` over a backfill of 94 windows, peak RSS was 282 MiB against
 * 195 with one compressor per batch; 189 with this copy and `compact`'s.
 */
function rest(data: Buffer): Buffer {
  return data.length * 2 < data.buffer.byteLength ? Buffer.from(data) : data;
}
