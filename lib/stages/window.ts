import { Transform, type TransformCallback } from 'node:stream';
import type { Acks, Batch, Destination, LinesPiece, Routed } from '../batch.js';
import type { SinkContext } from '../context.js';
import { ClockError } from '../errors.js';
import { lineBytes, type Line } from '../framing.js';
import { unpackLines } from '../lines.js';
import { formatKey, isKeyTime, newIdentifier } from '../key.js';
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
 * With the `time` option the window is that of each event's own time (its
 * arrival when it has none), a destination has a batch open per window it
 * has events for, and a batch closes when the clock passes its window's end
 * plus `time.lateMs`. A batch opened after that (by a late event) closes
 * `lateMs` after it opened, gathering the late events that follow it; one
 * opened early (its window ahead of the clock) closes at most `windowMs +
 * lateMs` after it opened. An event whose window's batch has closed opens
 * another.
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

/** Lines of one destination, all in one window: the window of `time` (with the `time` option, its first line's), or of their arrival (`null` or absent: the clock when they are admitted; a group of `keyBy` is its own slice). */
interface Slice {
  destination: Destination;
  lines: Line[];
  bytes: number;
  acks: Acks;
  time?: number | null | undefined;
  /** As in `Routed`: set when `lines` is a stretch of lines read. */
  events?: number | undefined;
}

/** An open batch, under its slot in the open map (its destination; with the `time` option, its destination and window). */
interface Open {
  batch: Batch;
  slot: string;
  /** When the clock closes it. */
  closesAt: number;
}

export class Window extends Transform {
  readonly #ctx: SinkContext;
  readonly #open = new Map<string, Open>();
  /** The `time` option is set: batches follow the events' own times. */
  readonly #eventTime: boolean;
  /** How long past its window's end a batch waits (`time.lateMs`; 0 by arrival, where nothing comes late). */
  readonly #lateMs: number;
  #seq = 0;
  #timer: unknown = null;
  #timerAt = Infinity;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#ctx = ctx;
    this.#eventTime = ctx.options.time !== null;
    this.#lateMs = ctx.options.time?.lateMs ?? 0;
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
    for (const open of [...this.#open.values()]) this.#close(open, out);
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

  /** Admits whole slices while they fit; `null` when all did, else a promise for the rest. */
  #admit(groups: Routed[], out: LinesPiece[]): Promise<void> | null {
    const { ledger, disk, options } = this.#ctx;
    const now = options.clock.now();
    if (!isKeyTime(now)) throw new ClockError(now);
    const slices = this.#slices(groups, now);
    for (let g = 0; g < slices.length; g++) {
      const slice = slices[g] as Slice;
      const { batch } = this.#batchFor(slice.destination, slice.time ?? now, now, out);
      const extra = this.#compressorCharge(batch, slice.bytes);
      if (batch.bytes + slice.bytes > options.maxObjectBytes || ledger.held + slice.bytes + extra > ledger.max || (disk !== null && disk.held + slice.bytes > disk.max)) {
        return this.#admitSlowly(slices, g, out);
      }
      this.#account(batch, slice.events ?? slice.lines.length, slice.bytes, extra);
      out.push(slice.events === undefined ? { batch, lines: slice.lines, bytes: slice.bytes, acks: slice.acks } : { batch, lines: slice.lines, bytes: slice.bytes, acks: slice.acks, events: slice.events });
    }
    return null;
  }

  /**
   * The groups as slices: by arrival, each group whole; with the `time`
   * option, one slice per window its lines fall in (most groups are in one:
   * the group's own arrays, nothing copied).
   */
  #slices(groups: Routed[], now: number): Slice[] {
    const slices: Slice[] = [];
    const { windowMs } = this.#ctx.options;
    for (const group of groups) {
      const { destination, lines, bytes, acks, times } = group;
      if (!this.#eventTime || times?.length !== lines.length || lines.length === 0) {
        // By arrival: the group itself is the slice (at a wide fan-out most groups are one line, and a copy each was
        // garbage), unless a stage of the user's gave it a `time` of its own, which must not decide its window.
        slices.push('time' in group ? { destination, lines, bytes, acks, time: null, events: group.events } : group);
        continue;
      }
      const first = timeOr(times[0] as number, now);
      const start = first - (first % windowMs);
      let i = 1;
      while (i < lines.length && inWindow(timeOr(times[i] as number, now), start, windowMs)) i++;
      if (i === lines.length) {
        slices.push(this.#late({ destination, lines, bytes, acks, time: first }, now));
        continue;
      }
      // Lines of several windows: a slice for each, its lines in the order they came.
      const byWindow = new Map<number, Slice>();
      for (let k = 0; k < lines.length; k++) {
        const time = timeOr(times[k] as number, now);
        const at = time - (time % windowMs);
        let slice = byWindow.get(at);
        if (slice === undefined) {
          slice = { destination, lines: [], bytes: 0, acks: acks === null ? null : [], time };
          byWindow.set(at, slice);
        }
        const line = lines[k] as Line;
        slice.lines.push(line);
        slice.bytes += lineBytes(line);
        slice.acks?.push(acks?.[k]);
      }
      for (const slice of byWindow.values()) slices.push(this.#late(slice, now));
    }
    return slices;
  }

  /** Counts the slice's lines late when their window's batch should have closed already (`lateMs` past its end). */
  #late(slice: Slice, now: number): Slice {
    if (windowOf(slice.time as number, this.#ctx.options.windowMs).end + this.#lateMs <= now) this.#ctx.counters.late += slice.events ?? slice.lines.length;
    return slice;
  }

  /** Line by line from `slices[first]` on: rolls over at `maxObjectBytes`, waits for the budget. */
  async #admitSlowly(slices: Slice[], first: number, out: LinesPiece[]): Promise<void> {
    const { ledger, disk, options } = this.#ctx;
    let now = options.clock.now();
    for (let g = first; g < slices.length; g++) {
      const slice = slices[g] as Slice;
      const { destination, acks, time } = slice;
      // One line at a time here: packed entries are split back into their lines.
      const lines = slice.events === undefined ? slice.lines : unpackLines(slice.lines);
      let run: Run | null = null;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i] as Line;
        const n = lineBytes(line);
        for (;;) {
          let open = this.#batchFor(destination, time ?? now, now, out);
          if (open.batch.events > 0 && open.batch.bytes + n > options.maxObjectBytes) {
            run = emitRun(run as Run | null, out);
            this.#close(open, out);
            open = this.#batchFor(destination, time ?? now, now, out);
          }
          const { batch } = open;
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
          if (decision === 'close') {
            const deficit = ledger.held + n + extra - ledger.max;
            // Lines held uncompressed are compressed into members first (one object per destination per
            // window as long as the compressed bytes fit); only then are batches closed early. Its
            // conversions release bytes: wait for them below.
            if (!ledger.compact(deficit) && this.#closeForRoom(ledger, deficit, out)) continue;
          }
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
          if (!isKeyTime(now)) throw new ClockError(now);
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

  /** What it costs to add `bytes` to `batch` beyond the bytes: what compressing it as it streams holds (`compressorBytes`), the first time it passes STREAM_AFTER_BYTES. */
  #compressorCharge(batch: Batch, bytes: number): number {
    return !batch.streaming && batch.bytes + bytes >= STREAM_AFTER_BYTES ? compressorBytes(this.#ctx.options.parallelGzip) : 0;
  }

  /**
   * The open batch of `destination` for the window of `time` (by arrival,
   * `time` is `now`), opening one (and closing one the clock has closed).
   */
  #batchFor(destination: Destination, time: number, now: number, out: LinesPiece[]): Open {
    const { windowMs } = this.#ctx.options;
    const { start, end } = windowOf(time, windowMs);
    const slot = this.#eventTime ? `${destination.id}\u0000${start}` : destination.id;
    const open = this.#open.get(slot);
    if (open && now < open.closesAt) return open;
    if (open) this.#close(open, out);
    const batch: Batch = {
      seq: ++this.#seq,
      destination,
      bucket: destination.bucket,
      key: formatKey(destination.prefix, time, newIdentifier()),
      openedAt: time,
      windowEnd: end,
      events: 0,
      bytes: 0,
      streaming: false,
    };
    // By arrival `now` is in the window, and this is its end. With event time: the window's end plus lateMs;
    // a late event's batch (that time is past) lateMs from now; an early one's at most a window and lateMs from now.
    const late = this.#lateMs;
    const closesAt = Math.min(end + late > now ? end + late : now + late, now + windowMs + late);
    const opened: Open = { batch, slot, closesAt };
    this.#open.set(slot, opened);
    this.#ctx.counters.openBatches += 1;
    if (closesAt < this.#timerAt) this.#setTimer(closesAt, now);
    return opened;
  }

  #close(open: Open, out: LinesPiece[]): void {
    if (this.#open.get(open.slot) !== open) return;
    this.#open.delete(open.slot);
    this.#ctx.counters.openBatches -= 1;
    const { batch } = open;
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
      .map((open) => ({ open, held: ledger.heldBy(open.batch) }))
      .filter((c) => c.held > 0)
      .sort((a, b) => b.held - a.held);
    let draining = ledger.draining();
    let closed = false;
    for (const { open, held } of candidates) {
      if (closed && draining >= target) break;
      this.#close(open, out);
      draining += held;
      closed = true;
    }
    return closed;
  }

  /** The timer: closes every batch whose time has come (its window's end, plus `time.lateMs`), even when no input comes. */
  #onTimer(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    if (this.destroyed) return;
    const now = this.#ctx.options.clock.now();
    const out: LinesPiece[] = [];
    let next = Infinity;
    for (const open of [...this.#open.values()]) {
      if (open.closesAt <= now) this.#close(open, out);
      else next = Math.min(next, open.closesAt);
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

/** An event's own time, or `now` when it has none (`NaN`). */
function timeOr(time: number, now: number): number {
  return time === time ? time : now;
}

function inWindow(time: number, start: number, windowMs: number): boolean {
  return time >= start && time < start + windowMs;
}

/** Moves a run's lines into `out` as one piece; always `null` (the run is done). */
function emitRun(run: Run | null, out: LinesPiece[]): null {
  if (run && run.lines.length > 0) out.push({ batch: run.batch, lines: run.lines, bytes: run.bytes, acks: run.acks });
  return null;
}
