import type { Line } from './framing.js';

/**
 * The values that flow between the stages. Every chunk carries many events:
 * `parse` and `keyBy` emit arrays, and from `window` on each piece belongs to
 * one batch (one future S3 object).
 */

/** What `parse` emits (an array of them per chunk) and what records mode accepts. */
export interface SinkRecord {
  /** Overrides the sink's default bucket. */
  bucket?: string;
  /** Overrides the sink's default prefix (never a template). */
  prefix?: string;
  /** Strings and Buffers are written as they are; everything else as JSON. */
  payload: unknown;
  /**
   * Any value: handed back exactly once, in `'delivered'` (or `'dead-letter'`,
   * or `'rejected'` with the reason), and before that in `'durable'` when the
   * sink has a spool. It rides with the event through the chain.
   */
  ack?: unknown;
}

/** The acks of some events (`undefined` entries are events without one), or `null` when none has one. */
export type Acks = unknown[] | null;

/** `a` followed by `b`, keeping `null` for none. */
export function concatAcks(a: Acks, b: Acks): Acks {
  if (a === null) return b;
  if (b === null) return a;
  return a.concat(b);
}

/** Where an object goes: a bucket and a normalised prefix (no leading, trailing or double `/`). */
export interface Destination {
  readonly bucket: string;
  readonly prefix: string;
  /** `bucket` and `prefix` as one map key. */
  readonly id: string;
}

export function destination(bucket: string, prefix: string): Destination {
  return { bucket, prefix, id: `${bucket}\u0000${prefix}` };
}

/** What `keyBy` emits: the lines of one destination, in the order they came. */
export interface Routed {
  destination: Destination;
  lines: Line[];
  /** Sum of `lineBytes(line)` over `lines`. */
  bytes: number;
  /** The acks of `lines`, one per line, or `null` when no event had one. */
  acks: Acks;
  /**
   * With the `time` option: each line's own time (ms since epoch), `NaN` for
   * one without a usable time (it follows its arrival). A stage of yours
   * between `keyBy` and `window` that drops lines drops their times too;
   * a group whose `times` do not match its lines follows arrival.
   */
  times?: number[] | undefined;
  /**
   * Set by `lineGroups` (lines to one fixed destination) for a group whose
   * one entry is a stretch of lines as read: several lines joined by their
   * `\n`s, with the last `\n` right after it in the same memory (a copy the
   * sink owns, or with `keepChunks` the chunk as written: `framedStretch`).
   * `events` is how many lines it holds. Absent: one event per entry.
   */
  events?: number;
}

/**
 * One future object: opened by `window` at its first event, closed at its
 * window's end, a size limit or the stream's end. It is identified by its
 * `key` (what the spool writes down and recovers): every stage that keeps
 * state per batch keys it by `key`, never by this object.
 */
export interface Batch {
  /** Order of opening, for logs. */
  readonly seq: number;
  readonly destination: Destination;
  readonly bucket: string;
  readonly key: string;
  /** The time of its first event (ms since epoch): its arrival, or with the `time` option its own time. The time in the key. */
  readonly openedAt: number;
  /** When its window ends (ms since epoch). */
  readonly windowEnd: number;
  /**
   * The source can give its events again until the batch is durable (Kafka):
   * its spool segment ends with a mark when the batch ends, and one without
   * the mark is dropped at recovery instead of delivered.
   */
  readonly sealed?: boolean;
  /** Events and line bytes in it so far (updated by `window` until it closes). */
  events: number;
  bytes: number;
  /**
   * Set by `window` once the batch is large enough to be compressed as it
   * arrives (a compressor of its own); smaller batches are compressed in one
   * go when they close.
   */
  streaming: boolean;
}

/**
 * A batch is complete: nothing more will come for it. From `gzip` on it
 * carries the acks of the whole batch (they reach `upload` with it).
 */
export interface End {
  batch: Batch;
  end: true;
  acks?: Acks;
}

/** What `window` emits (arrays of them): lines for a batch (with their acks, one per line; `events` as in `Routed`, passed on), or its end. */
export type LinesPiece = { batch: Batch; lines: Line[]; bytes: number; acks: Acks; events?: number } | End;

/**
 * What `join` emits (arrays of them) and `gzip` emits (one at a time): bytes
 * for a batch, or its end. Before `gzip` a data piece carries the acks of its
 * lines (only those that have one) and how many lines it holds; `gzip`
 * gathers the acks onto the batch's end.
 */
export type BytesPiece = { batch: Batch; data: Buffer; acks?: Acks; events?: number } | End;

export function isEnd(piece: LinesPiece | BytesPiece): piece is End {
  return 'end' in piece;
}
