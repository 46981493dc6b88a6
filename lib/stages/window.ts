import { Transform, type TransformCallback } from 'node:stream';
import type { Acks, Batch, Destination, LinesPiece, Routed } from '../batch.js';
import type { SinkContext } from '../context.js';
import { lineBytes, type Line } from '../framing.js';
import { formatKey, newIdentifier } from '../key.js';
import { compressorBytes, decide, type Ledger } from '../ledger.js';

/**
 * Stage 3: arrays of `Routed` → arrays of `LinesPiece` (lines tagged with their
 * batch, and batch ends).
 *
 * A batch is one destination in one window (windows aligned to multiples of
 * `windowMs` since the epoch). It opens at its first event (that instant names
 * the object) and closes at its window's end (a timer pushes the end even when
 * no input comes), before it would pass `maxObjectBytes`, when the memory
 * budget is full of batches that cannot make a part yet (the largest closes),
 * or when the stream ends.
 *
 * This is where the memory budget (and, with a spool, its `maxBytes`) is
 * enforced: events wait here until they fit. A budget full of open batches
 * closes the largest; one full of closed batches waits for them to drain.
 */
export function window(ctx: SinkContext): Window {
  return new Window(ctx);
}

/** A batch this large (line bytes) gets a compressor of its own and streams; smaller ones are compressed in one go at close. */
export const STREAM_AFTER_BYTES = 1024 * 1024;

/** Pure: the window `[start, end)` that `time` falls in. */
export function windowOf(time: number, windowMs: number): { start: number; end: number } {
  const start = Math.floor(time / windowMs) * windowMs;
  return { start, end: start + windowMs };
}

interface Run {
  batch: Batch;
  lines: Line[];
  bytes: number;
  acks: Acks;
}

export class Window extends Transform {
  readonly #ctx: SinkContext;
  readonly #open = new Map<string, Batch>();
  #seq = 0;
  #timer: unknown = null;
  #timerAt = Infinity;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#ctx = ctx;
  }

  override _transform(groups: Routed[], _encoding: BufferEncoding, callback: TransformCallback): void {
    const out: LinesPiece[] = [];
    let pending: Promise<void> | null;
    try {
      pending = this.#admit(groups, out);
    } catch (err) {
      callback(err as Error); // a clock that gives no time (ClockError): the sink fails, naming it
      return;
    }
    if (pending === null) {
      this.#pushAll(out);
      callback();
      return;
    }
    pending.then(() => {
      if (this.destroyed) return;
      this.#pushAll(out);
      callback();
    }, callback);
  }

  override _flush(callback: TransformCallback): void {
    const out: LinesPiece[] = [];
    for (const batch of [...this.#open.values()]) this.#close(batch, out);
    this.#pushAll(out);
    this.#clearTimer();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#clearTimer();
    this.#ctx.ledger.wake();
    this.#ctx.disk?.wake();
    callback(error);
  }

  /** Admits whole groups while they fit; `null` when all did, else a promise for the rest. */
  #admit(groups: Routed[], out: LinesPiece[]): Promise<void> | null {
    const { ledger, disk, options } = this.#ctx;
    const now = options.clock.now();
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g] as Routed;
      const batch = this.#batchFor(group.destination, now, out);
      const extra = this.#compressorCharge(batch, group.bytes);
      if (batch.bytes + group.bytes > options.maxObjectBytes || ledger.held + group.bytes + extra > ledger.max || (disk !== null && disk.held + group.bytes > disk.max)) {
        return this.#admitSlowly(groups, g, out);
      }
      this.#account(batch, group.lines.length, group.bytes, extra);
      out.push({ batch, lines: group.lines, bytes: group.bytes, acks: group.acks });
    }
    return null;
  }

  /** Line by line from `groups[first]` on: rolls over at `maxObjectBytes`, waits for the budget. */
  async #admitSlowly(groups: Routed[], first: number, out: LinesPiece[]): Promise<void> {
    const { ledger, disk, options } = this.#ctx;
    let now = options.clock.now();
    for (let g = first; g < groups.length; g++) {
      const { destination, lines, acks } = groups[g] as Routed;
      let run: Run | null = null;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i] as Line;
        const n = lineBytes(line);
        for (;;) {
          let batch = this.#batchFor(destination, now, out);
          if (batch.events > 0 && batch.bytes + n > options.maxObjectBytes) {
            run = emitRun(run as Run | null, out);
            this.#close(batch, out);
            batch = this.#batchFor(destination, now, out);
          }
          const extra = this.#compressorCharge(batch, n);
          const decision = decide(ledger.held, ledger.max, n + extra, ledger.draining);
          const spooled = disk === null ? 'admit' : decide(disk.held, disk.max, n, disk.draining);
          if (decision === 'admit' && spooled === 'admit') {
            this.#ctx.spoolAtMax = false;
            this.#account(batch, 1, n, extra);
            let current = run as Run | null;
            if (current?.batch !== batch) {
              emitRun(current, out);
              current = { batch, lines: [], bytes: 0, acks: acks === null ? null : [] };
            }
            current.lines.push(line);
            current.acks?.push(acks?.[i]);
            current.bytes += n;
            run = current;
            break;
          }
          run = emitRun(run as Run | null, out);
          if (decision === 'close' && this.#closeForRoom(ledger, ledger.held + n + extra - ledger.max, out)) continue;
          if (disk !== null && spooled !== 'admit') {
            if (spooled === 'close' && this.#closeForRoom(disk, disk.held + n - disk.max, out)) continue;
            if (!this.#ctx.spoolAtMax) {
              this.#ctx.spoolAtMax = true;
              this.#ctx.warn('S3SINK_SPOOL_MAX', `the spool holds its maxBytes (${disk.max}) of events not yet in S3: input waits until some are delivered (nothing is dropped)`);
            }
          }
          // Wait from before the push: what it pushes (the ends of batches just closed) can settle
          // synchronously on its way down (a stage of the user's that holds or drops their bytes),
          // and a release that came before the wait would never wake it.
          const released = disk === null ? ledger.released() : Promise.race([ledger.released(), disk.released()]);
          this.#pushAll(out.splice(0));
          await released;
          if (this.destroyed) return;
          now = options.clock.now();
        }
      }
      emitRun(run as Run | null, out);
    }
  }

  #account(batch: Batch, events: number, bytes: number, compressor: number): void {
    this.#ctx.ledger.charge(batch, bytes + compressor);
    this.#ctx.disk?.charge(batch, bytes);
    if (compressor > 0) batch.streaming = true;
    batch.events += events;
    batch.bytes += bytes;
    this.#ctx.counters.bytesIn += bytes;
  }

  /** What it costs to add `bytes` to `batch` beyond the bytes: a compressor, the first time it passes STREAM_AFTER_BYTES. */
  #compressorCharge(batch: Batch, bytes: number): number {
    return !batch.streaming && batch.bytes + bytes >= STREAM_AFTER_BYTES ? compressorBytes(this.#ctx.options.parallelGzip) : 0;
  }

  /** The open batch of `destination`, opening one (and closing one whose window has passed). */
  #batchFor(destination: Destination, now: number, out: LinesPiece[]): Batch {
    const open = this.#open.get(destination.id);
    if (open && now < open.windowEnd) return open;
    if (open) this.#close(open, out);
    const { end } = windowOf(now, this.#ctx.options.windowMs);
    const batch: Batch = {
      seq: ++this.#seq,
      destination,
      bucket: destination.bucket,
      key: formatKey(destination.prefix, now, newIdentifier()),
      openedAt: now,
      windowEnd: end,
      events: 0,
      bytes: 0,
      streaming: false,
    };
    this.#open.set(destination.id, batch);
    this.#ctx.counters.openBatches += 1;
    if (end < this.#timerAt) this.#setTimer(end, now);
    return batch;
  }

  #close(batch: Batch, out: LinesPiece[]): void {
    if (this.#open.get(batch.destination.id) !== batch) return;
    this.#open.delete(batch.destination.id);
    this.#ctx.counters.openBatches -= 1;
    if (batch.events === 0) return; // opened, then nothing fitted: no object
    this.#ctx.ledger.markClosed(batch);
    this.#ctx.disk?.markClosed(batch);
    out.push({ batch, end: true });
  }

  /**
   * Closes open batches, largest first by what they hold of `ledger` (the
   * memory budget or the spool's), until what drains covers `deficit`
   * plus an eighth of the budget, so that several small objects go up at
   * once instead of one round trip per wait. `false` when none could close.
   */
  #closeForRoom(ledger: Ledger, deficit: number, out: LinesPiece[]): boolean {
    const target = deficit + ledger.max / 8;
    const candidates = [...this.#open.values()]
      .map((batch) => ({ batch, held: ledger.heldBy(batch) }))
      .filter((c) => c.held > 0)
      .sort((a, b) => b.held - a.held);
    let draining = ledger.draining();
    let closed = false;
    for (const { batch, held } of candidates) {
      if (closed && draining >= target) break;
      this.#close(batch, out);
      draining += held;
      closed = true;
    }
    return closed;
  }

  /** The timer: closes every batch whose window has ended, even when no input comes. */
  #onTimer(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    if (this.destroyed) return;
    const now = this.#ctx.options.clock.now();
    const out: LinesPiece[] = [];
    let next = Infinity;
    for (const batch of [...this.#open.values()]) {
      if (batch.windowEnd <= now) this.#close(batch, out);
      else next = Math.min(next, batch.windowEnd);
    }
    this.#pushAll(out);
    if (next !== Infinity) this.#setTimer(next, now);
  }

  #setTimer(at: number, now: number): void {
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = this.#ctx.options.clock.setTimeout(() => this.#onTimer(), Math.max(1, at - now));
  }

  #clearTimer(): void {
    if (this.#timer !== null) this.#ctx.options.clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  #pushAll(out: LinesPiece[]): void {
    if (out.length > 0) this.push(out);
  }
}

/** Moves a run's lines into `out` as one piece; always `null` (the run is done). */
function emitRun(run: Run | null, out: LinesPiece[]): null {
  if (run && run.lines.length > 0) out.push({ batch: run.batch, lines: run.lines, bytes: run.bytes, acks: run.acks });
  return null;
}
