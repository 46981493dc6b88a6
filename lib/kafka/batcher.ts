import { createHash } from 'node:crypto';
import type { Batch, BytesPiece, Destination } from '../batch.js';
import type { Line } from '../framing.js';
import { formatKey, MAX_KEY_TIME } from '../key.js';
import type { RoutedEvent } from '../route.js';
import { STREAM_AFTER_BYTES, windowOf } from '../stages/window.js';

/**
 * The pure core of the Kafka input: which records of one partition form one
 * batch, so that a batch is a function of the log and not of when or by whom
 * it was read.
 *
 * A *log batch* covers consecutive offsets `[first, last]` of one partition:
 * every record in that range is in it (or was rejected). For each destination
 * among its records it makes one object, keyed by the batch's window and an
 * identifier derived from (group, topic, partition, first offset,
 * destination). It closes before a record when:
 * 1. the record's timestamp is at or past the end of the batch's window (the
 *    window of its first record); an earlier timestamp (a late record) stays;
 * 2. the record would take the batch past `maxBatchBytes` of lines, or one of
 *    its objects past `maxObjectBytes`;
 * 3. a *recorded cut* says the batch ended at an offset below the record's.
 *
 * Rules 1 and 2 read only the log, so whoever reads the partition again (this
 * worker after a crash, another after a rebalance) makes the same batches:
 * the same keys holding the same lines, and a second delivery rewrites an
 * object with the same bytes. Every other close (the partition went idle,
 * the memory budget was full, the worker is stopping) is a *cut*: it is
 * recorded with the partition's committed offset before any of its objects
 * can be written, and rule 3 makes a reader after that do the same.
 */

/** What the batcher needs of a Kafka record. */
export interface LogRecord {
  offset: number;
  /**
   * ms since the epoch (the record's CreateTime or LogAppendTime). One that
   * no key can hold (before 1970, as Kafka's -1, "no timestamp", which
   * brokers take; or past 9999) counts as the nearest instant one can.
   */
  timestamp: number;
}

/** The record's time as the batches and keys use it: within what a key can hold. */
export function recordTime(record: LogRecord): number {
  const t = record.timestamp;
  if (!(t > 0)) return 0;
  return Math.min(t, MAX_KEY_TIME - 1);
}

/**
 * One destination's share of a log batch: one future object. Its lines are
 * copied in as they come, each followed by `\n`, into blocks that double
 * from 1 KiB to `BLOCK_BYTES`: what it holds is about its bytes (no object
 * per line; a share of one small line holds 1 KiB, not a large block), and
 * it keeps no reference to the buffers the Kafka client read them into.
 */
export interface Share {
  batch: Batch;
  /**
   * What its bytes are charged to in the memory budget until it goes into
   * the chain (then they move to `batch`, its key): unique, because a batch
   * read again may have the key of one still in the chain.
   */
  readonly ref: { readonly key: string };
  /** Full blocks, then the one being filled (`fill` bytes of it used). */
  blocks: Buffer[];
  fill: number;
  /** Lines in each block. */
  counts: number[];
}

export const BLOCK_BYTES = 256 * 1024;
let shareSeq = 0;
const FIRST_BLOCK_BYTES = 1024;

/** Appends `line` and its `\n` to the share's blocks (`bytes` = `lineBytes(line)`). */
function append(share: Share, line: Line, bytes: number): void {
  let block = share.blocks[share.blocks.length - 1];
  if (block === undefined || block.length - share.fill < bytes) {
    if (block !== undefined) share.blocks[share.blocks.length - 1] = block.subarray(0, share.fill);
    const next = block === undefined ? FIRST_BLOCK_BYTES : Math.min(BLOCK_BYTES, block.length * 2);
    block = Buffer.allocUnsafe(Math.max(next, bytes));
    share.blocks.push(block);
    share.counts.push(0);
    share.fill = 0;
  }
  share.fill += typeof line === 'string' ? block.write(line, share.fill) : line.copy(block, share.fill);
  block[share.fill++] = 10;
  share.counts[share.counts.length - 1] = (share.counts[share.counts.length - 1] as number) + 1;
}

export interface LogBatch {
  readonly topic: string;
  readonly partition: number;
  readonly first: number;
  last: number;
  readonly window: { start: number; end: number };
  /** Destination id → its share, in order of first appearance. */
  readonly shares: Map<string, Share>;
  /** Line bytes held. */
  bytes: number;
  /** Records in `[first, last]` that are in an object (not rejected). */
  events: number;
}

export interface BatcherOptions {
  groupId: string;
  topic: string;
  partition: number;
  windowMs: number;
  maxBatchBytes: number;
  maxObjectBytes: number;
  /** Batches are `sealed` in the spool (see `Batch.sealed`): set when the sink has one. */
  sealed?: boolean;
}

export class PartitionBatcher {
  readonly #o: BatcherOptions;
  /** Recorded cuts not yet passed, ascending: a batch ends at each of these offsets. */
  #cuts: number[];
  #open: LogBatch | null = null;
  /** The offset after the last record seen (records below it are skipped as seen). */
  #next = -1;

  constructor(options: BatcherOptions, recordedCuts: readonly number[] = []) {
    this.#o = options;
    this.#cuts = [...recordedCuts].sort((a, b) => a - b);
  }

  get open(): LogBatch | null {
    return this.#open;
  }

  /** The offset after the last record this batcher took, or -1 before the first. */
  get next(): number {
    return this.#next;
  }

  /** Recorded cuts at or after `offset` (what a commit at `offset` must carry). */
  cutsFrom(offset: number): number[] {
    return this.#cuts.filter((cut) => cut >= offset);
  }

  /** Forgets the cuts below `offset` (committed past: no reader starts before them). */
  forget(offset: number): void {
    this.#cuts = this.#cuts.filter((cut) => cut >= offset);
  }

  /** A record below `next` was seen already (a fetch that re-delivers it). */
  seen(record: LogRecord): boolean {
    return record.offset < this.#next;
  }

  /**
   * The open batch, closed if a rule says so before `record` (whose line, when
   * it has one, is `routed`); `null` when it goes on. Pure: reads the log only.
   */
  closeBefore(record: LogRecord, routed: RoutedEvent | null): LogBatch | null {
    const open = this.#open;
    if (open === null) return null;
    const cut = this.#cuts.find((c) => c >= open.first);
    const due =
      (cut !== undefined && open.last <= cut && record.offset > cut) ||
      recordTime(record) >= open.window.end ||
      (routed !== null && (open.bytes + routed.bytes > this.#o.maxBatchBytes || shareBytes(open, routed.destination) + routed.bytes > this.#o.maxObjectBytes));
    return due ? this.#close() : null;
  }

  /**
   * Takes `record` into the open batch (opening one at it), its line into its
   * destination's share. Returns the share (its `ref` is what its bytes are
   * charged to), or `null` for a record with no line (rejected).
   */
  take(record: LogRecord, routed: RoutedEvent | null): Share | null {
    // Nothing changes before the record's share exists: a record that cannot be taken is never passed as seen.
    const open = this.#open ?? { topic: this.#o.topic, partition: this.#o.partition, first: record.offset, last: record.offset, window: windowOf(recordTime(record), this.#o.windowMs), shares: new Map(), bytes: 0, events: 0 };
    let share = routed === null ? undefined : open.shares.get(routed.destination.id);
    if (routed !== null && share === undefined) share = { batch: this.#batchOf(open, routed.destination, recordTime(record)), ref: { key: `\u0000held ${++shareSeq}` }, blocks: [], fill: 0, counts: [] };
    this.#open = open;
    open.last = record.offset;
    this.#next = record.offset + 1;
    if (routed === null || share === undefined) return null;
    open.shares.set(routed.destination.id, share);
    append(share, routed.line, routed.bytes);
    share.batch.events += 1;
    share.batch.bytes += routed.bytes;
    open.bytes += routed.bytes;
    open.events += 1;
    return share;
  }

  /**
   * Passes over the records up to `last`: a batch of them (from the next
   * record on) is closed already, on its way by an earlier reading of the
   * partition. Only between batches (none open).
   */
  skip(last: number): void {
    if (this.#open !== null) throw new Error(`skip(${last}) with a batch open at ${this.#open.first}`);
    this.#next = Math.max(this.#next, last + 1);
  }

  /**
   * The offsets up to `offset` hold nothing more for this reader (a
   * transaction's control record, an aborted transaction's records): they
   * count as read, so that a commit can pass them. Every record up to
   * `offset` must have been given to take() already.
   */
  pass(offset: number): void {
    this.#next = Math.max(this.#next, offset + 1);
  }

  /** Closes the open batch now (a cut, to be recorded by the caller); `null` when none is open. */
  cut(): LogBatch | null {
    const open = this.#open;
    if (open === null) return null;
    if (!this.#cuts.includes(open.last)) {
      this.#cuts.push(open.last);
      this.#cuts.sort((a, b) => a - b);
    }
    return this.#close();
  }

  #close(): LogBatch | null {
    const open = this.#open;
    this.#open = null;
    return open;
  }

  #batchOf(open: LogBatch, dest: Destination, timestamp: number): Batch {
    // The key's time: the destination's first record, kept inside the batch's window (a late record's is earlier).
    const at = Math.min(open.window.end - 1, Math.max(open.window.start, timestamp));
    const { groupId, topic, partition } = this.#o;
    return {
      seq: 0,
      destination: dest,
      bucket: dest.bucket,
      key: formatKey(dest.prefix, at, batchIdentifier(groupId, topic, partition, open.first, dest)),
      openedAt: at,
      windowEnd: open.window.end,
      ...(this.#o.sealed ? { sealed: true } : {}),
      events: 0,
      bytes: 0,
      streaming: false,
    };
  }
}

function shareBytes(open: LogBatch, dest: Destination): number {
  return open.shares.get(dest.id)?.batch.bytes ?? 0;
}

/** The 64-hex identifier of a log batch's object: what names the batch, hashed. */
export function batchIdentifier(groupId: string, topic: string, partition: number, first: number, dest: Destination): string {
  return createHash('sha256').update(`s3-sink kafka v1\u0000${groupId}\u0000${topic}\u0000${partition}\u0000${first}\u0000${dest.bucket}\u0000${dest.prefix}`).digest('hex');
}

/** A closed log batch as the chain's pieces (what `join` would make): each share's blocks of framed lines, then its end. */
export function piecesOf(batch: LogBatch): BytesPiece[] {
  const out: BytesPiece[] = [];
  for (const share of batch.shares.values()) {
    const b = share.batch;
    b.streaming = b.bytes >= STREAM_AFTER_BYTES;
    share.blocks.forEach((block, i) => {
      const data = i === share.blocks.length - 1 ? block.subarray(0, share.fill) : block;
      out.push({ batch: b, data, events: share.counts[i] as number });
    });
    out.push({ batch: b, end: true });
  }
  return out;
}

/** The lines of a share (for tests and tools): its blocks split at `\n`. */
export function shareLines(share: Share): string[] {
  const text = Buffer.concat(share.blocks.map((block, i) => (i === share.blocks.length - 1 ? block.subarray(0, share.fill) : block))).toString('utf8');
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

/**
 * Kafka keeps at most this much commit metadata per partition (the broker's
 * `offset.metadata.max.bytes`, 4096 by default): a commit with more fails.
 * Cuts that would take the metadata past it wait (see the worker).
 */
export const MAX_METADATA_BYTES = 4000;

/**
 * The commit metadata of a partition: the recorded cuts at or after its
 * committed offset, ascending: `{"s3sink":1,"cuts":[...]}` while that fits
 * in MAX_METADATA_BYTES (what every release reads), else version 2, the
 * first in base 36 and then the gaps between them
 * (`{"s3sink":2,"cuts":"2n9c,rs,1a"}`): about 5 bytes a cut, so some 800 fit
 * in Kafka's 4 KiB, where version 1 holds about 300 (and a commit of more
 * would fail).
 */
export function encodeCuts(cuts: readonly number[]): string {
  const sorted = [...cuts].sort((a, b) => a - b);
  const v1 = JSON.stringify({ s3sink: 1, cuts: sorted });
  if (v1.length <= MAX_METADATA_BYTES) return v1;
  return JSON.stringify({ s3sink: 2, cuts: sorted.map((cut, i) => (cut - (i === 0 ? 0 : (sorted[i - 1] as number))).toString(36)).join(',') });
}

/** The cuts in commit metadata; `[]` for none, for metadata not ours, or for damaged metadata. */
export function decodeCuts(metadata: string | null | undefined): number[] {
  if (!metadata) return [];
  try {
    const parsed = JSON.parse(metadata) as { s3sink?: unknown; cuts?: unknown };
    if (parsed.s3sink === 1 && Array.isArray(parsed.cuts)) return parsed.cuts.filter((c): c is number => Number.isSafeInteger(c) && c >= 0);
    if (parsed.s3sink !== 2 || typeof parsed.cuts !== 'string') return [];
    if (parsed.cuts === '') return [];
    const cuts: number[] = [];
    let at = 0;
    for (const gap of parsed.cuts.split(',')) {
      if (!/^[0-9a-z]{1,11}$/.test(gap)) return [];
      at += parseInt(gap, 36);
      if (!Number.isSafeInteger(at)) return [];
      cuts.push(at);
    }
    return cuts;
  } catch {
    return [];
  }
}
