import { EventEmitter } from 'node:events';
import { S3Client } from '@aws-sdk/client-s3';
import { Ledger } from './ledger.js';
import { resolveOptions, type ResolvedOptions, type SinkOptions } from './options.js';

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
  /** Objects being uploaded now. */
  uploadsInFlight: number;
  /** Events rejected (see the `'rejected'` event). */
  rejected: number;
  /** Events sent to `deadLetterPrefix` because their templated prefix could not be filled. */
  unrouted: number;
}

export interface SinkEvents {
  object: [Receipt];
  rejected: [Rejection];
}

type Counters = Omit<SinkStats, 'bufferedBytes' | 'peakBufferedBytes'>;

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
  };
  readonly #ownsClient: boolean;
  #warnedRejection = false;
  #disposed = false;

  constructor(options: SinkOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.#ownsClient = this.options.client === undefined;
    this.client = this.options.client ?? new S3Client(this.options.s3 ?? {});
    this.ledger = new Ledger(this.options.maxBufferedBytes);
  }

  stats(): SinkStats {
    return { ...this.counters, bufferedBytes: this.ledger.held, peakBufferedBytes: this.ledger.peak };
  }

  /** Reports an event that will not be written. Without a listener, the first one also becomes a process warning. */
  reject(code: string, reason: string, head: Uint8Array | string): void {
    this.counters.rejected += 1;
    const text = typeof head === 'string' ? head.slice(0, 64) : Buffer.from(head.subarray(0, 64)).toString('utf8');
    const rejection: Rejection = { code, reason, head: text };
    if (this.listenerCount('rejected') > 0) {
      this.emit('rejected', rejection);
    } else if (!this.#warnedRejection) {
      this.#warnedRejection = true;
      process.emitWarning(`s3-sink rejected an event: ${reason} (listen to 'rejected' to see every one; stats().rejected counts them)`, { code });
    }
  }

  /** Frees what the sink owns (its S3 client's sockets). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#ownsClient) this.client.destroy();
  }
}

/** A context for building the chain by hand: `parse(ctx)`, `keyBy(ctx)`, ... */
export function sinkContext(options: SinkOptions = {}): SinkContext {
  return new SinkContext(options);
}
