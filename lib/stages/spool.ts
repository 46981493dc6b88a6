import { basename } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { destination, type Acks, type Batch, type BytesPiece } from '../batch.js';
import type { SinkContext } from '../context.js';
import { messageOf } from '../errors.js';
import { compressorBytes } from '../ledger.js';
import { abortMultipartUpload } from '../multipart.js';
import { countLines, DATA, decodeHeader, END, HEADER, SegmentReader, UPLOAD, wholeLines } from '../segment.js';
import { SpoolError, type Spool } from '../spool.js';
import { STREAM_AFTER_BYTES } from './window.js';

/**
 * The spool stage, between `join` and `gzip`: arrays of `BytesPiece` in,
 * the same pieces out, each written to its batch's segment first (see
 * spool.ts). A batch's end goes on only once its segment is fsynced.
 *
 * It also re-delivers from disk, through the same `gzip` and `upload`:
 * - at start, the segments an earlier run left (under their recorded keys);
 * - a batch whose upload failed in a way that can pass (an outage): its
 *   memory is freed and it is read back from its segment later, for as long
 *   as it takes.
 * Its end (and so the sink's `close()`) waits until every batch it wrote or
 * re-delivered is in S3 or in the dead-letter area.
 *
 * Without the `spool` option it is a plain pass-through.
 */
export function spool(ctx: SinkContext): Duplex {
  return ctx.spool ? new SpoolStage(ctx, ctx.spool) : new PassThrough({ objectMode: true, highWaterMark: 4 });
}

/** A segment to deliver again from disk. */
interface Replay {
  path: string;
  /** Acks that come back when it is delivered (a retry's; a leftover has none). */
  acks: Acks;
  /** Left by an earlier run (`null`), else the batch of this run an upload sent back. */
  sentBack: Batch | null;
}

/** Data is read back from a segment in pieces of about this size. */
const REPLAY_PIECE = 1024 * 1024;
/** A batch sent back to the spool is delivered again after this long at first, doubling up to REDELIVER_MAX_MS. */
const REDELIVER_MIN_MS = 1_000;
const REDELIVER_MAX_MS = 5 * 60_000;

export class SpoolStage extends Duplex {
  readonly #ctx: SinkContext;
  readonly #spool: Spool;
  /** Keys of batches written or re-delivered by this run and not yet delivered or dead-lettered. */
  readonly #unsettled = new Set<string>();
  /** Batches with pieces written here whose end has not come yet. */
  readonly #open = new Map<string, Batch>();
  readonly #queue: Replay[] = [];
  #replaying = false;
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  readonly #redeliveries = new Map<string, number>();
  #readWaiters: (() => void)[] = [];
  #onFinal: (() => void) | null = null;
  /** What the stage fails with at its end: a batch sent back whose segment was gone. */
  #lostError: Error | null = null;
  /** Leftovers not yet delivered (or found empty); `'recovered'` is reported when it reaches 0. */
  #recovery = { left: 0, bytes: 0 };
  readonly #recovering = new Set<string>();

  constructor(ctx: SinkContext, spool: Spool) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 4 });
    this.#ctx = ctx;
    this.#spool = spool;
    spool.stage = {
      settled: (key) => this.#settled(key),
      redeliver: (batch, acks, reason) => this.#redeliverLater(batch, acks, reason),
    };
    for (const path of spool.leftovers) this.#queue.push({ path, acks: null, sentBack: null });
    this.#recovery.left = spool.leftovers.length;
    if (this.#queue.length > 0) this.#pump();
  }

  override _write(pieces: BytesPiece[], _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const writes: Promise<void>[] = [];
    for (const piece of pieces) {
      if ('end' in piece) {
        this.#open.delete(piece.batch.key);
        writes.push(this.#spool.end(piece.batch.key));
      } else {
        this.#open.set(piece.batch.key, piece.batch);
        this.#unsettled.add(piece.batch.key);
        writes.push(this.#spool.append(piece.batch, piece.data, piece.acks ?? null, piece.events ?? countLines(piece.data)));
      }
    }
    Promise.all(writes).then(
      () => {
        if (this.destroyed) return;
        if (this.push(pieces)) callback();
        else this.#readWaiters.push(() => callback());
      },
      (err: unknown) => callback(err as Error),
    );
  }

  override _read(): void {
    const waiters = this.#readWaiters;
    this.#readWaiters = [];
    for (const wake of waiters) wake();
  }

  override _final(callback: (error?: Error | null) => void): void {
    // Batches whose end never came (a stage of the user's held their pieces past it) end here, as gzip would end them.
    const unended = [...this.#open.values()];
    this.#open.clear();
    Promise.all(unended.map((batch) => this.#spool.end(batch.key))).then(
      () => {
        if (this.destroyed) return;
        if (unended.length > 0) this.push(unended.map((batch): BytesPiece => ({ batch, end: true })));
        this.#onFinal = () => {
          this.push(null);
          callback(this.#lostError);
        };
        this.#maybeFinal();
      },
      (err: unknown) => callback(err as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    this._read();
    callback(error);
  }

  /** Pushes `chunk`; resolves when the next stage wants more. */
  #pushWhenWanted(chunk: BytesPiece[]): Promise<void> {
    if (this.push(chunk)) return Promise.resolve();
    return new Promise((resume) => this.#readWaiters.push(resume));
  }

  /**
   * A batch sent back to the spool whose segment is gone or unreadable when
   * its turn comes (removed by hand, the directory deleted): nothing is left
   * to deliver. Reported like a batch lost without a spool (its acks with it,
   * `path: null`), and the sink fails at its end.
   */
  #lost(replay: Replay, batch: Batch, why: string): void {
    const { counters, options } = this.#ctx;
    const error = new SpoolError(`upload of s3://${batch.bucket}/${batch.key} failed and ${why}: its ${batch.events} events are not delivered`, null);
    this.#lostError ??= error;
    counters.lostBatches += 1;
    counters.lostEvents += batch.events;
    this.#ctx.report('dead-letter', { bucket: batch.bucket, key: batch.key, path: null, code: 'ERR_S3SINK_SPOOL', error: error.message, time: new Date(options.clock.now()).toISOString(), events: batch.events, bytes: batch.bytes, compressedBytes: 0, acks: (replay.acks ?? []) as unknown[] });
    this.#settled(batch.key);
  }

  #settled(key: string): void {
    this.#ctx.disk?.settle({ key });
    this.#unsettled.delete(key);
    this.#redeliveries.delete(key);
    if (this.#recovering.delete(key)) this.#recoveredOne();
    this.#maybeFinal();
  }

  #maybeFinal(): void {
    if (!this.#onFinal || this.#unsettled.size > 0 || this.#queue.length > 0 || this.#replaying || this.#retryTimers.size > 0) return;
    const done = this.#onFinal;
    this.#onFinal = null;
    done();
  }

  /** An upload failed in a way that can pass: its memory is freed, and it is read back from disk later. */
  #redeliverLater(batch: Batch, acks: Acks, reason: unknown): void {
    if (this.destroyed) return;
    const n = (this.#redeliveries.get(batch.key) ?? 0) + 1;
    this.#redeliveries.set(batch.key, n);
    const delay = Math.min(REDELIVER_MAX_MS, REDELIVER_MIN_MS * 2 ** Math.min(n - 1, 20));
    this.#ctx.counters.redelivered += 1;
    this.#ctx.warn('S3SINK_REDELIVER', `upload of s3://${batch.bucket}/${batch.key} failed (${messageOf(reason)}); it stays in the spool and is delivered again in ${Math.round(delay / 1000)} s`);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      this.#queue.push({ path: this.#spool.pathOf(batch.bucket, batch.key), acks, sentBack: batch });
      this.#pump();
    }, delay);
    this.#retryTimers.add(timer);
  }

  #pump(): void {
    if (this.#replaying) return;
    this.#replaying = true;
    (async () => {
      while (this.#queue.length > 0 && !this.destroyed) await this.#replay(this.#queue.shift() as Replay);
    })().then(
      () => {
        this.#replaying = false;
        this.#maybeFinal();
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  /** Reads one segment back and sends it down the chain as a batch under its recorded key. */
  async #replay(replay: Replay): Promise<void> {
    const spool = this.#spool;
    const { ledger } = this.#ctx;
    const { path } = replay;
    let adopted: ReturnType<Spool['adopt']> | null = null;
    const reader = new SegmentReader(path);
    try {
      await reader.open();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // Gone before its turn (delivered by hand, or removed): nothing to deliver, but it counts as done.
        if (replay.sentBack === null) this.#recoveredOne();
        else this.#lost(replay, replay.sentBack, `its spool segment ${path} is gone`);
        return;
      }
      throw err;
    }
    try {
      const first = await reader.next();
      const header = first?.type === HEADER ? decodeHeader(first.payload) : 'no header record';
      if (typeof header === 'string') {
        // Nothing says where it belongs; an empty one (a crash right after creating it) is dropped, anything else kept aside.
        await reader.close();
        // Not even a whole header: created, nothing written. A damaged one (bad crc, unknown type) may have events after it: kept.
        if (first === null && reader.tail.kind !== 'corrupt') await spool.removePath(path);
        else this.#ctx.warn('S3SINK_SPOOL_UNREADABLE', `spool segment ${path} cannot be read (${first === null ? 'header record damaged' : header}): moved to ${await spool.moveToDead(path, `unreadable-${Date.now()}-${basename(path)}`)}`);
        if (replay.sentBack === null) this.#recoveredOne();
        else this.#lost(replay, replay.sentBack, `its spool segment ${path} cannot be read`);
        return;
      }
      if (header.sealed && replay.sentBack === null && !(await endsSealed(path))) {
        // An unfinished batch of a source that gives its events again (Kafka): its records were never
        // reported durable, so their offsets were not committed; they are read again, into the same batch.
        const uploads = await notedUploads(path);
        await reader.close();
        for (const id of uploads) await abortMultipartUpload(this.#ctx, header.bucket, header.key, id);
        await spool.removePath(path);
        this.#ctx.warn('S3SINK_SPOOL_UNSEALED', `spool segment of s3://${header.bucket}/${header.key} belongs to a batch that never ended: dropped (its source holds its events and gives them again)`);
        this.#recoveredOne();
        return;
      }
      const slash = header.key.lastIndexOf('/');
      const batch: Batch = {
        seq: 0,
        destination: destination(header.bucket, slash === -1 ? '' : header.key.slice(0, slash)),
        bucket: header.bucket,
        key: header.key,
        openedAt: header.openedAt,
        windowEnd: header.openedAt,
        ...(header.sealed ? { sealed: true } : {}),
        events: 0,
        bytes: 0,
        streaming: reader.size >= STREAM_AFTER_BYTES,
      };
      adopted = replay.sentBack === null ? spool.adopt(batch) : null;
      if (replay.sentBack === null) {
        this.#unsettled.add(batch.key);
        this.#recovering.add(batch.key);
        // What an earlier run left counts against maxBytes until it is delivered.
        this.#ctx.disk?.charge(batch, reader.size);
        this.#ctx.disk?.markClosed(batch);
      }
      const uploads: string[] = [];
      const send = async (data: Buffer) => {
        const charge = data.length + (batch.events === 0 && batch.streaming ? compressorBytes(this.#ctx.options.parallelGzip) : 0);
        // Waits while other batches hold the budget. Its own bytes cannot wait for themselves: a batch
        // cannot be closed early here (its key and bytes are fixed), and its upload starts only past a
        // part, so with a budget under two parts a replay may pass it by up to a part (then the
        // upload's own backpressure holds it).
        while (ledger.held - ledger.heldBy(batch) > 0 && ledger.held + charge > ledger.max && !this.destroyed) await ledger.released();
        ledger.charge(batch, charge);
        // It will all drain (nothing more comes for it): window waits for it rather than close its own batches.
        ledger.markClosed(batch);
        batch.events += countLines(data);
        batch.bytes += data.length;
        await this.#pushWhenWanted([{ batch, data }]);
      };
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      for (let record = await reader.next(); record !== null && !this.destroyed; record = await reader.next()) {
        if (record.type === UPLOAD) {
          const id = (JSON.parse(record.payload.toString('utf8')) as { uploadId?: unknown }).uploadId;
          if (typeof id === 'string') uploads.push(id);
          continue;
        }
        if (record.type !== DATA) continue; // END: a sealed batch's last record
        pending.push(record.payload);
        pendingBytes += record.payload.length;
        if (pendingBytes >= REPLAY_PIECE) {
          await send(Buffer.concat(pending, pendingBytes));
          pending = [];
          pendingBytes = 0;
        }
      }
      const tail = reader.tail;
      if (tail.kind === 'torn') {
        const kept = wholeLines(tail.present);
        if (kept.length > 0) {
          pending.push(kept);
          pendingBytes += kept.length;
        }
        this.#ctx.warn('S3SINK_SPOOL_TORN', `spool segment of s3://${batch.bucket}/${batch.key} ends in a record cut short by a crash: ${countLines(kept)} whole lines of it kept, ${tail.present.length > 0 ? tail.present.length - kept.length : tail.bytes} bytes dropped (never reported durable)`);
      } else if (tail.kind === 'corrupt') {
        this.#ctx.warn('S3SINK_SPOOL_CORRUPT', `spool segment of s3://${batch.bucket}/${batch.key} is damaged at byte ${tail.offset}: the ${tail.bytes} bytes from there are not delivered`);
      }
      // Cut to what is delivered, so that notes of this delivery's uploads can be read after a crash.
      if (!this.destroyed) await adopted?.repair(reader.position, tail.kind === 'torn' ? wholeLines(tail.present) : null);
      if (pendingBytes > 0) await send(Buffer.concat(pending, pendingBytes));
      await reader.close();
      if (this.destroyed) return;
      // Multipart uploads an earlier run left: aborted (one this run gave up on, the upload stage aborted already).
      if (replay.sentBack === null) for (const id of uploads) await abortMultipartUpload(this.#ctx, batch.bucket, batch.key, id);
      if (batch.events === 0) {
        await spool.remove(batch);
        return;
      }
      if (replay.sentBack === null) {
        this.#recovery.bytes += batch.bytes;
        this.#ctx.counters.recoveredBatches += 1;
        this.#ctx.counters.recoveredEvents += batch.events;
      }
      ledger.markClosed(batch);
      await this.#pushWhenWanted([replay.acks ? { batch, end: true, acks: replay.acks } : { batch, end: true }]);
    } finally {
      adopted?.release();
      await reader.close().catch(() => {});
    }
  }

  /** A leftover was delivered, dead-lettered, or found empty or unreadable; after the last, `'recovered'` says what it all came to. */
  #recoveredOne(): void {
    if (--this.#recovery.left !== 0) return;
    const { recoveredBatches: batches, recoveredEvents: events } = this.#ctx.counters;
    this.#ctx.report('recovered', { batches, events, bytes: this.#recovery.bytes });
  }
}

/** Whether a segment holds an intact `END` record (notes of uploads may follow it). */
async function endsSealed(path: string): Promise<boolean> {
  const reader = new SegmentReader(path);
  try {
    await reader.open();
    for (let record = await reader.next(); record !== null; record = await reader.next()) if (record.type === END) return true;
    return false;
  } catch {
    return false;
  } finally {
    await reader.close().catch(() => {});
  }
}

/** The multipart uploads noted in a segment (best effort: what can be read). */
async function notedUploads(path: string): Promise<string[]> {
  const reader = new SegmentReader(path);
  const ids: string[] = [];
  try {
    await reader.open();
    for (let record = await reader.next(); record !== null; record = await reader.next()) {
      if (record.type !== UPLOAD) continue;
      const id = (JSON.parse(record.payload.toString('utf8')) as { uploadId?: unknown }).uploadId;
      if (typeof id === 'string') ids.push(id);
    }
  } catch {
    // what could be read is all there is
  } finally {
    await reader.close().catch(() => {});
  }
  return ids;
}
