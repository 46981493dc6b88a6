import { Duplex, Transform, type TransformCallback } from 'node:stream';
import type { SinkRecord } from '../batch.js';
import type { SinkContext } from '../context.js';
import { LineSplitter, type Split } from '../lines.js';

/**
 * Stage 1: input → arrays of `SinkRecord`.
 *
 * Lines mode: bytes in, one event per line (see `LineSplitter`), one array per chunk.
 * Records mode: `{ bucket?, prefix?, payload }` objects in (a string or Buffer is
 * taken as a payload); records that queue up while downstream is busy leave
 * as one array. A chunk of the wrong shape is reported (`'rejected'`), never thrown.
 */
export function parse(ctx: SinkContext): Duplex {
  return ctx.options.input === 'lines' ? new LineParser(ctx) : new RecordParser(ctx);
}

export class LineParser extends Transform {
  readonly #ctx: SinkContext;
  readonly #splitter: LineSplitter;

  constructor(ctx: SinkContext) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#ctx = ctx;
    this.#splitter = new LineSplitter(ctx.options.maxLineBytes);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#emit(this.#splitter.push(chunk));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#emit(this.#splitter.end());
    callback();
  }

  #emit({ lines, oversized }: Split): void {
    // A rejected line was read too: eventsIn = eventsOut + rejected + dead-lettered + what is under way.
    this.#ctx.counters.eventsIn += lines.length + oversized.length;
    for (const o of oversized) {
      this.#ctx.reject('ERR_S3SINK_LINE_TOO_LONG', `line of ${o.bytes} bytes is longer than maxLineBytes (${this.#splitter.maxLineBytes})`, o.head);
    }
    if (lines.length === 0) return;
    const events: SinkRecord[] = new Array(lines.length);
    for (let i = 0; i < lines.length; i++) events[i] = { payload: lines[i] };
    this.push(events);
  }
}

export class RecordParser extends Duplex {
  readonly #ctx: SinkContext;
  #waiting: (() => void) | null = null;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, writableHighWaterMark: 256, readableHighWaterMark: 4 });
    this.#ctx = ctx;
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#take([chunk], callback);
  }

  override _writev(chunks: { chunk: unknown }[], callback: (error?: Error | null) => void): void {
    this.#take(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _read(): void {
    const resume = this.#waiting;
    this.#waiting = null;
    resume?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.push(null);
    callback();
  }

  #take(chunks: unknown[], callback: () => void): void {
    const events: SinkRecord[] = [];
    for (const chunk of chunks) {
      const record = toRecord(chunk);
      if (typeof record === 'string') this.#ctx.reject('ERR_S3SINK_RECORD', record, preview(chunk), ackOf(chunk));
      else events.push(record);
    }
    this.#ctx.counters.eventsIn += chunks.length;
    if (events.length === 0 || this.push(events)) callback();
    else this.#waiting = callback;
  }
}

/** A record, or why `chunk` is not one. */
export function toRecord(chunk: unknown): SinkRecord | string {
  if (typeof chunk === 'string' || chunk instanceof Uint8Array) return { payload: chunk };
  if (chunk === null || typeof chunk !== 'object' || Array.isArray(chunk)) {
    return `record is ${chunk === null ? 'null' : Array.isArray(chunk) ? 'an array' : typeof chunk}, expected { bucket?, prefix?, payload } or a string or Buffer`;
  }
  const record = chunk as Record<string, unknown>;
  if (!('payload' in record)) return 'record has no payload field, expected { bucket?, prefix?, payload }';
  if (record.bucket !== undefined && typeof record.bucket !== 'string') return `record bucket is ${typeof record.bucket}, expected a string`;
  if (record.prefix !== undefined && typeof record.prefix !== 'string') return `record prefix is ${typeof record.prefix}, expected a string`;
  return record as unknown as SinkRecord;
}

/** The ack of a chunk that is not a valid record, when it is an object that has one. */
function ackOf(chunk: unknown): unknown {
  return chunk !== null && typeof chunk === 'object' && !Array.isArray(chunk) && !(chunk instanceof Uint8Array) ? (chunk as { ack?: unknown }).ack : undefined;
}

function preview(chunk: unknown): string {
  try {
    return String(JSON.stringify(chunk)).slice(0, 64);
  } catch {
    return String(chunk).slice(0, 64);
  }
}
