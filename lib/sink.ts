import { finished, pipeline, Writable, type Duplex } from 'node:stream';
import { sinkContext, type Fenced, type Receipt, type Recovered, type Rejection, type SinkContext, type SinkStats, type SinkWarning, type SweepResult, type Unrouted } from './context.js';
import type { DeadLetter } from './deadLetter.js';
import { sweepOrphans } from './multipart.js';
import type { SinkOptions } from './options.js';
import { gzip } from './stages/gzip.js';
import { join } from './stages/join.js';
import { keyBy } from './stages/keyBy.js';
import { fixedDestination, lineGroups } from './stages/lineGroups.js';
import { parse } from './stages/parse.js';
import { spool } from './stages/spool.js';
import { upload, type Delivered } from './stages/upload.js';
import { window } from './stages/window.js';
import type { RetryInfo } from './transport.js';

/**
 * The sink: the stages composed into one Writable.
 *
 * `'finish'` (and so `pipeline(source, sink)` and `close()`) comes only when
 * every accepted event is in a completed S3 object. `destroy(err)` stops every
 * stage, aborts the uploads under way and frees the client's sockets.
 */
export interface S3Sink {
  on(event: 'object', listener: (receipt: Receipt) => void): this;
  on(event: 'rejected', listener: (rejection: Rejection) => void): this;
  on(event: 'retry', listener: (retry: RetryInfo) => void): this;
  on(event: 'dead-letter', listener: (letter: DeadLetter) => void): this;
  on(event: 'warning', listener: (warning: SinkWarning) => void): this;
  on(event: 'swept', listener: (result: SweepResult) => void): this;
  on(event: 'durable', listener: (acks: unknown[]) => void): this;
  on(event: 'delivered', listener: (delivered: Delivered) => void): this;
  on(event: 'recovered', listener: (recovered: Recovered) => void): this;
  on(event: 'unrouted', listener: (unrouted: Unrouted) => void): this;
  on(event: 'fenced', listener: (fenced: Fenced) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'object', listener: (receipt: Receipt) => void): this;
  once(event: 'rejected', listener: (rejection: Rejection) => void): this;
  once(event: 'retry', listener: (retry: RetryInfo) => void): this;
  once(event: 'dead-letter', listener: (letter: DeadLetter) => void): this;
  once(event: 'warning', listener: (warning: SinkWarning) => void): this;
  once(event: 'swept', listener: (result: SweepResult) => void): this;
  once(event: 'durable', listener: (acks: unknown[]) => void): this;
  once(event: 'delivered', listener: (delivered: Delivered) => void): this;
  once(event: 'recovered', listener: (recovered: Recovered) => void): this;
  once(event: 'unrouted', listener: (unrouted: Unrouted) => void): this;
  once(event: 'fenced', listener: (fenced: Fenced) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class S3Sink extends Writable {
  readonly context: SinkContext;
  readonly #stages: readonly (Duplex | Writable)[];
  readonly #head: Writable;
  readonly #tail: Writable;
  #chainError: Error | null = null;
  readonly #chainDone: Promise<void>;
  readonly #sweepAbort = new AbortController();
  readonly #sweep: Promise<unknown>;

  constructor(ctx: SinkContext, stages: readonly (Duplex | Writable)[]) {
    const records = ctx.options.input === 'records';
    super({ objectMode: records, highWaterMark: records ? 64 : 64 * 1024 });
    if (stages.length < 2) throw new TypeError('composeSink needs at least two stages');
    this.context = ctx;
    this.#stages = stages;
    this.#head = stages[0] as Writable;
    this.#tail = stages[stages.length - 1] as Writable;
    this.#chainDone = new Promise((resolve) => {
      pipeline(stages as unknown as NodeJS.WritableStream[], (err) => {
        if (err && !this.#chainError) this.#chainError = err;
        resolve();
        if (err && !this.destroyed) this.destroy(err);
      });
    });
    ctx.forwardTo(this);
    // Runs beside the first uploads; the sink finishes only after it.
    this.#sweep = sweepOrphans(ctx, this.#sweepAbort.signal);
  }

  /** Ends the input and resolves when every event is in S3 (rejects with the error that stopped it). */
  async close(): Promise<void> {
    if (!this.writableEnded) this.end();
    await new Promise<void>((resolve, reject) => finished(this, { readable: false }, (err) => (err ? reject(err) : resolve())));
  }

  stats(): SinkStats {
    return this.context.stats();
  }

  override _write(chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#head.write(chunk, encoding)) callback();
    else this.#head.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#head.end();
    Promise.all([this.#chainDone, this.#sweep])
      .then(() => this.context.dispose())
      .then(() => callback(this.#chainError));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // What made it stop, as known now: the premature closes of the stages it destroys below are not news.
    const cause = error ?? this.#chainError;
    this.#sweepAbort.abort();
    for (const stage of this.#stages) if (!stage.destroyed) stage.destroy(error ?? undefined);
    // The uploader's destroy aborts multipart uploads; wait for it before the client goes.
    // And for the spool's writes under way: no 'durable' after 'close', and no lock freed before them.
    finished(this.#tail, () => {
      // The stages are down: what they held is dropped, so none of it is buffered (stats().bufferedBytes).
      this.context.ledger.clear();
      this.context.dispose().then(() => callback(cause));
    });
  }
}

/**
 * The sink for `options`: `parse → keyBy → window → join → spool → gzip → upload`
 * as one Writable (`spool` passes pieces through when the option is not set).
 * For lines to one fixed destination, `lineGroups` stands for `parse → keyBy`.
 */
export function s3Sink(options: SinkOptions = {}): S3Sink {
  const ctx = sinkContext(options);
  const front = fixedDestination(ctx) === null ? [parse(ctx), keyBy(ctx)] : [lineGroups(ctx)];
  return composeSink(ctx, [...front, window(ctx), join(), spool(ctx), gzip(ctx), upload(ctx)]);
}

/**
 * One Writable (with `close()`, `stats()` and the sink's events) from a chain
 * built by hand, e.g. with a redaction step after `parse`. The stages must share `ctx`.
 */
export function composeSink(ctx: SinkContext, stages: readonly (Duplex | Writable)[]): S3Sink {
  return new S3Sink(ctx, stages);
}
