import { EventEmitter } from 'node:events';
import { S3Client } from '@aws-sdk/client-s3';
import type { DeadLetter } from './deadLetter.js';
import { Spool } from './spool.js';
import type { Delivered } from './stages/upload.js';
import { OptionError } from './errors.js';
import { Ledger, pieceSlots, reservedBytes } from './ledger.js';
import { PiecePool } from './piecePool.js';
import { resolveOptions, type InputTraits, type ResolvedOptions, type SinkOptions } from './options.js';
import { Transport, type RetryInfo } from './transport.js';

/** One per completed object (the `'object'` event). */
export interface Receipt {
  bucket: string;
  key: string;
  /** Events (lines) in the object. */
  events: number;
  /** Bytes of its lines, uncompressed. */
  bytes: number;
  /** Bytes of the object in S3. */
  compressedBytes: number;
  /** 1 for a PutObject, else the number of multipart parts. */
  parts: number;
}

/** An event the sink could not take (the `'rejected'` event); the events around it go on. */
export interface Rejection {
  /** Stable: `ERR_S3SINK_LINE_TOO_LONG`, `ERR_S3SINK_PAYLOAD`, `ERR_S3SINK_RECORD`, `ERR_S3SINK_BUCKET`. */
  code: string;
  /** What was wrong and what was expected. */
  reason: string;
  /** Its first bytes (up to 64), decoded as UTF-8 for display. */
  head: string;
  /** The event's `ack`, when it had one. */
  ack?: unknown;
}

/** Counters since the sink started (`sink.stats()`). */
export interface SinkStats {
  /** Events accepted (parsed from lines, or records written). */
  eventsIn: number;
  /** Events in completed objects. */
  eventsOut: number;
  /** Completed objects. */
  objects: number;
  /** Line bytes accepted, uncompressed. */
  bytesIn: number;
  /** Bytes of completed objects, compressed. */
  bytesOut: number;
  /** Batches open for new events now. */
  openBatches: number;
  /** Bytes held against `maxBufferedBytes` now. */
  bufferedBytes: number;
  /** The most `bufferedBytes` has been. */
  peakBufferedBytes: number;
  /** Pieces of streaming batches being compressed now (`parallelGzip`), across all batches. */
  piecesInFlight: number;
  /** The most `piecesInFlight` has been: never more than the sink's cap (cores + 1, at most 5 with libuv's default 4 threads). */
  peakPiecesInFlight: number;
  /** Objects being uploaded now. */
  uploadsInFlight: number;
  /** Events rejected (see the `'rejected'` event). */
  rejected: number;
  /** Events sent to `deadLetterPrefix` because their templated prefix could not be filled. */
  unrouted: number;
  /** With the `time` option: events without a usable time of their own, batched by their arrival instead. */
  untimed: number;
  /**
   * With the `time` option: events that came later than their window's end
   * plus `time.lateMs` (on the clock). They go into a batch opened late for
   * their window: one more object for it when one was written already.
   */
  late: number;
  /** Requests retried (see the `'retry'` event). */
  retries: number;
  /** Batches given up on and written to the `deadLetter` directory. */
  deadLettered: number;
  /** Events in those batches. */
  deadLetteredEvents: number;
  /** Multipart uploads left behind by earlier runs and aborted by the orphan sweep. */
  orphansAborted: number;
  /** Batches given up on with no place to keep them (no spool, no `deadLetter`): not delivered. */
  lostBatches: number;
  /** Events in those batches. */
  lostEvents: number;
  /** Events written to the spool (they survive a crash of the process). */
  spooledEvents: number;
  /** Events made durable in the spool per its fsync policy (their acks are reported `'durable'`). */
  durableEvents: number;
  /** Batches an earlier run left in the spool, re-delivered by this one. */
  recoveredBatches: number;
  /** Events in those batches. */
  recoveredEvents: number;
  /** Times a batch whose upload failed in a way that can pass went back to the spool to be delivered again. */
  redelivered: number;
  /** Batches not written because their input no longer owned them when their object was to be published (see `SinkContext.fence`; Kafka workers only). */
  fenced: number;
  /** Bytes of this run's spool segments on disk now. */
  spooledBytes: number;
}

/** What an earlier run left in the spool and this one delivered (the `'recovered'` event). */
export interface Recovered {
  batches: number;
  events: number;
  /** Line bytes, uncompressed. */
  bytes: number;
}

/**
 * An event that went to `deadLetterPrefix` because its templated prefix could
 * not be filled (the `'unrouted'` event): said only for events that carry an
 * `ack`, so a caller can tell its client. The event itself goes on (it is
 * spooled and delivered under that prefix; its ack comes back as usual).
 */
export interface Unrouted {
  ack: unknown;
  /** Why the template could not be filled. */
  reason: string;
  /** Where the event went: the normalised dead-letter prefix. */
  prefix: string;
}

/** Why input waits for room now (see `SinkContext.full`). */
export type Full = 'spool-max' | 'disk-full';

/** Something the operator should know that did not stop delivery (the `'warning'` event). */
export interface SinkWarning {
  /** Stable: `S3SINK_NO_ABORT`, `S3SINK_ABORT_FAILED`, `S3SINK_NO_LIST_UPLOADS`, `S3SINK_SWEEP_FAILED`. */
  code: string;
  message: string;
}

/** The orphan sweep's result (the `'swept'` event). */
export interface SweepResult {
  bucket: string;
  prefixes: string[];
  /** Multipart uploads in the sink's format older than the threshold. */
  found: number;
  aborted: number;
}

export interface SinkEvents {
  object: [Receipt];
  rejected: [Rejection];
  retry: [RetryInfo];
  'dead-letter': [DeadLetter];
  warning: [SinkWarning];
  swept: [SweepResult];
  durable: [unknown[]];
  delivered: [Delivered];
  recovered: [Recovered];
  unrouted: [Unrouted];
  fenced: [Fenced];
}

/** A batch that was not written because its input lost the right to write it (the `'fenced'` event): another reader writes its records. */
export interface Fenced {
  bucket: string;
  key: string;
  events: number;
  acks: unknown[];
}

type Counters = Omit<SinkStats, 'bufferedBytes' | 'peakBufferedBytes' | 'piecesInFlight' | 'peakPiecesInFlight' | 'spooledBytes'>;

/**
 * An input's say over whether a batch may still be published (see
 * `SinkContext.fence`), asked for every attempt to publish an object
 * (PutObject, CompleteMultipartUpload).
 */
export interface Fence {
  /**
   * Before the attempt: may this input write the batch of `key`? It may wait
   * (for a heartbeat, for commits) before it answers; `false` fences the
   * batch (its upload is aborted, its segment deleted, `'fenced'` reported).
   */
  mayPublish(key: string): Promise<boolean>;
  /**
   * At the last moment before the request leaves (synchronously, after the
   * body's checksum and the signature were computed): does that permission
   * still hold? If not, the request is not sent, and `mayPublish` is asked
   * again.
   */
  holds(key: string): boolean;
}

/**
 * What the stages of one sink share: the resolved options, the S3 client, the
 * memory budget, the counters, and the events a user listens to. `s3Sink()`
 * makes one; to build the chain by hand, make one with `sinkContext()` and pass
 * it to every stage.
 */
export class SinkContext extends EventEmitter<SinkEvents> {
  readonly options: ResolvedOptions;
  readonly client: S3Client;
  readonly ledger: Ledger;
  /** With `parallelGzip`: the sink's cap on pieces compressed at once, across all batches (their compressors are set aside in `ledger`). */
  readonly pieces: PiecePool | null;
  /** With a spool: its `maxBytes`, as a budget of line bytes charged by `window` and settled when a segment is deleted. */
  readonly disk: Ledger | null;
  readonly counters: Counters = {
    eventsIn: 0,
    eventsOut: 0,
    objects: 0,
    bytesIn: 0,
    bytesOut: 0,
    openBatches: 0,
    uploadsInFlight: 0,
    rejected: 0,
    unrouted: 0,
    untimed: 0,
    late: 0,
    retries: 0,
    deadLettered: 0,
    deadLetteredEvents: 0,
    orphansAborted: 0,
    lostBatches: 0,
    lostEvents: 0,
    spooledEvents: 0,
    durableEvents: 0,
    recoveredBatches: 0,
    recoveredEvents: 0,
    redelivered: 0,
    fenced: 0,
  };
  /** Every request of the sink goes through it: timeouts, retries, the abort signal. */
  readonly transport: Transport;
  /** The durable spool, when the `spool` option is set. */
  readonly spool: Spool | null;
  readonly #ownsClient: boolean;
  readonly #warned = new Set<string>();
  /** Where the sink's events also go: the S3Sink that wraps this context, if any. */
  #target: EventEmitter = this;
  #disposed = false;
  /**
   * Set by an input whose right to a batch can be taken away (a Kafka worker
   * and the partitions the group gives it). `null` (the default): every batch
   * may be written.
   */
  fence: Fence | null = null;
  /** Set by `window` while it waits for the spool's `maxBytes` to drain (see `full`). */
  spoolAtMax = false;

  constructor(options: SinkOptions = {}, traits: InputTraits = {}) {
    super();
    this.options = resolveOptions(options, traits);
    this.#ownsClient = this.options.client === undefined;
    // The transport retries; the SDK's own retry layer would multiply attempts. The SDK's default agent has 50
    // sockets, fewer than the upload stage's maxUploads x queueSize requests at once (64 by default): the rest would
    // wait for a socket after a Kafka worker's fence had its last look at them (see Fence.holds), for as long as
    // other requests take (a slow S3), and leave past a rebalance. One more socket for the sweep's request.
    const sockets = this.options.maxUploads * this.options.queueSize + 1;
    this.client = this.options.client ?? new S3Client({ maxAttempts: 1, requestHandler: { httpAgent: { maxSockets: sockets }, httpsAgent: { maxSockets: sockets } }, ...this.options.s3 });
    const { maxBufferedBytes, parallelGzip } = this.options;
    this.ledger = new Ledger(maxBufferedBytes, reservedBytes(maxBufferedBytes, parallelGzip));
    this.pieces = parallelGzip ? new PiecePool(pieceSlots(maxBufferedBytes)) : null;
    this.disk = this.options.spool === null ? null : new Ledger(this.options.spool.maxBytes);
    this.transport = new Transport(this.client, this.options.retry, this.options.requestTimeoutMs, (info) => {
      this.counters.retries += 1;
      this.report('retry', info);
    });
    this.spool = this.options.spool === null ? null : this.#openSpool();
  }

  #openSpool(): Spool {
    const options = this.options.spool as NonNullable<ResolvedOptions['spool']>;
    const hooks = {
      written: (events: number) => {
        this.counters.spooledEvents += events;
      },
      durable: (acks: unknown[], events: number) => {
        this.counters.durableEvents += events;
        if (acks.length > 0) this.report('durable', acks);
      },
      warn: (code: string, message: string, once?: boolean) => this.warn(code, message, once),
    };
    try {
      return new Spool(options, hooks);
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_S3SINK_SPOOL_LOCKED') throw err;
      const [option, dir] = this.options.deadLetter === undefined ? ['spool.dir', options.dir] : ['deadLetter', this.options.deadLetter];
      throw new OptionError(option, dir, `a directory that can be created and written (${(err as Error).message})`);
    }
  }

  /**
   * Whether input waits now for the spool to have room, beyond ordinary
   * backpressure: `'spool-max'` while `window` waits for the spool's
   * `maxBytes` to drain (S3 slow or down: `S3SINK_SPOOL_MAX`), `'disk-full'`
   * while a spool write waits for room on its disk (`S3SINK_SPOOL_FULL`);
   * `null` otherwise. A server answers 503 then instead of taking more in.
   */
  get full(): Full | null {
    if (this.spool?.diskFull) return 'disk-full';
    return this.spoolAtMax ? 'spool-max' : null;
  }

  stats(): SinkStats {
    return {
      ...this.counters,
      bufferedBytes: this.ledger.held,
      peakBufferedBytes: this.ledger.peak,
      piecesInFlight: this.pieces?.running ?? 0,
      peakPiecesInFlight: this.pieces?.peak ?? 0,
      spooledBytes: this.spool?.bytes ?? 0,
    };
  }

  /** From now on the sink's events are emitted on `target` (the S3Sink wrapping the stages) as well as on this context. */
  forwardTo(target: EventEmitter): void {
    this.#target = target;
  }

  /** Emits one of the sink's events where its user listens (the sink, and this context). */
  report<K extends keyof SinkEvents>(event: K, ...args: SinkEvents[K]): void {
    if (this.#target !== this) this.#target.emit(event, ...args);
    (this as EventEmitter).emit(event, ...args);
  }

  #listened(event: keyof SinkEvents): boolean {
    return this.listenerCount(event) > 0 || (this.#target !== this && this.#target.listenerCount(event) > 0);
  }

  /**
   * Reports something the operator should know; `once` keys a warning that
   * is said only the first time. Without a listener it becomes a process warning.
   */
  warn(code: string, message: string, once = false): void {
    if (once) {
      if (this.#warned.has(code)) return;
      this.#warned.add(code);
    }
    if (this.#listened('warning')) this.report('warning', { code, message });
    else process.emitWarning(`s3-sink: ${message}`, { code });
  }

  /** Reports an event that will not be written. Without a listener, the first one also becomes a process warning. */
  reject(code: string, reason: string, head: Uint8Array | string, ack?: unknown): void {
    this.counters.rejected += 1;
    const text = typeof head === 'string' ? head.slice(0, 64) : Buffer.from(head.subarray(0, 64)).toString('utf8');
    if (this.#listened('rejected')) {
      this.report('rejected', ack === undefined ? { code, reason, head: text } : { code, reason, head: text, ack });
    } else if (!this.#warned.has('rejected')) {
      this.#warned.add('rejected');
      process.emitWarning(`s3-sink rejected an event: ${reason} (listen to 'rejected' to see every one; stats().rejected counts them)`, { code });
    }
  }

  /** Frees what the sink owns (its S3 client's sockets, its spool); resolves once the spool's last write is done and its lock freed. Idempotent. */
  dispose(): Promise<void> {
    if (!this.#disposed) {
      this.#disposed = true;
      if (this.#ownsClient) this.client.destroy();
    }
    return this.spool?.close() ?? Promise.resolve();
  }
}


/** A context for building the chain by hand: `parse(ctx)`, `keyBy(ctx)`, ... */
export function sinkContext(options: SinkOptions = {}): SinkContext {
  return new SinkContext(options);
}
