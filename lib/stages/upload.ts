import { setMaxListeners } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Batch, BytesPiece } from '../batch.js';
import type { SinkContext } from '../context.js';
import type { DeadLetter } from '../deadLetter.js';
import { FencedError, messageOf, UploadError } from '../errors.js';
import { abortMultipartUpload } from '../multipart.js';
import { classify } from '../retry.js';
import { whenWritable } from '../streams.js';
import type { Command } from '../transport.js';

/**
 * Stage 6 (a Writable): `BytesPiece`s (gzip) → S3 objects.
 *
 * One `@aws-sdk/lib-storage` `Upload` per batch, its body fed as pieces
 * arrive. A batch starts uploading once it has more than one part of bytes
 * (its parts then go to S3 while its window is still open) or when it ends
 * (a batch of at most one part becomes one PutObject). At most `maxUploads`
 * run at once; the others wait their turn, their bytes counted in the budget.
 *
 * A write to a running upload calls back only when its body accepts more:
 * with S3 slow, this is where backpressure starts.
 *
 * Requests go through the context's transport (timeouts, retries). An upload
 * given up on is aborted (AbortMultipartUpload), and then:
 * - with a spool (or `deadLetter`, a spool by another name), a failure that
 *   can pass (an outage) sends the batch back to the spool, which delivers it
 *   again from disk later; any other failure moves it to the dead-letter area;
 * - without, it is reported (`'dead-letter'` with `path: null`) and lost;
 *   the other batches go on, and the sink fails at its end.
 * Either way its acks come back once, in `'delivered'` or `'dead-letter'`.
 *
 * With a `fence` in the context (Kafka workers), every attempt to publish an
 * object (PutObject, CompleteMultipartUpload) asks it first; a fenced batch
 * is aborted and dropped (its segment too) and reported `'fenced'`: its input
 * has lost its records to another reader, which writes them.
 */
export function upload(ctx: SinkContext): Uploader {
  return new Uploader(ctx);
}

/** Body buffer of a running upload, beyond what lib-storage holds in its parts. */
const BODY_BUFFER = 256 * 1024;
/** How long `destroy` waits for AbortMultipartUpload of the uploads it cuts off. */
const ABORT_TIMEOUT_MS = 5_000;

interface Job {
  batch: Batch;
  /** Compressed bytes received before the upload started. */
  pending: Buffer[];
  compressed: number;
  /** Bytes S3 has acknowledged. */
  acked: number;
  parts: number;
  ended: boolean;
  queued: boolean;
  body: PassThrough | null;
  upload: Upload | null;
  uploadId: string | null;
  /** Why the upload was given up on; the rest of the batch is then dropped (the spool has it). */
  failure: unknown;
  /** The acks of its events (they came with its end). */
  acks: unknown[] | null;
}

/** What a `'delivered'` event says: the acks of the events of one object now in S3. */
export interface Delivered {
  bucket: string;
  key: string;
  events: number;
  /** The acks of its events that had one (in the order they were written). */
  acks: unknown[];
}

export class Uploader extends Writable {
  readonly #ctx: SinkContext;
  /** By batch key. */
  readonly #jobs = new Map<string, Job>();
  #queue: Job[] = [];
  #running = 0;
  readonly #abort = new AbortController();
  #onIdle: (() => void) | null = null;
  /** Batches given up on with no place to keep them. */
  readonly #lost: UploadError[] = [];

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#ctx = ctx;
    // Every request in flight listens to it (and stops listening when done): up to maxUploads × queueSize at once.
    setMaxListeners(0, this.#abort.signal);
  }

  override _write(piece: BytesPiece, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const job = this.#job(piece.batch);
    if ('end' in piece) {
      if (piece.acks) job.acks = job.acks ? job.acks.concat(piece.acks) : piece.acks;
      this.#end(job);
      callback();
      return;
    }
    job.compressed += piece.data.length;
    if (job.failure !== null) {
      // Given up on: the rest of the batch is not sent (with a spool, its segment has every byte).
      this.#ctx.ledger.release(job.batch, piece.data.length);
      callback();
      return;
    }
    if (!job.body) {
      job.pending.push(piece.data);
      if (job.compressed > this.#ctx.options.partSize) this.#requestStart(job);
      callback();
      return;
    }
    const bodyFull = !job.body.write(piece.data);
    this.#reportInParts(job);
    whenWritable([bodyFull ? job.body : null], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const job of this.#jobs.values()) if (!job.ended) this.#end(job);
    this.#onIdle = () => callback(this.#lostError());
    this.#maybeIdle();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#abort.abort();
    this.#queue = [];
    const cutOff = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of cutOff) {
      job.body?.destroy();
      job.upload?.abort().catch(() => {});
      this.#ctx.ledger.settle(job.batch);
    }
    this.#ctx.ledger.wake();
    // Never leave a multipart upload behind to bill the user; but do not hold a destroy up for long.
    const deadline = AbortSignal.timeout(ABORT_TIMEOUT_MS);
    Promise.all(cutOff.filter((job) => job.uploadId !== null).map((job) => this.#abortMultipart(job.batch, job.uploadId as string, deadline))).then(() => callback(error));
  }

  #job(batch: Batch): Job {
    let job = this.#jobs.get(batch.key);
    if (!job) {
      job = { batch, pending: [], compressed: 0, acked: 0, parts: 0, ended: false, queued: false, body: null, upload: null, uploadId: null, failure: null, acks: null };
      this.#jobs.set(batch.key, job);
    }
    return job;
  }

  #end(job: Job): void {
    job.ended = true;
    if (job.failure !== null) this.#giveUp(job);
    else if (job.body) job.body.end();
    else if (job.compressed === 0) this.#nothingToWrite(job);
    else this.#requestStart(job);
  }

  /**
   * A batch ended with no bytes (a stage of the user's dropped them all): no
   * object is written (an empty file is not gzip), and its charge is settled
   * now, whatever the stage did with its bytes.
   */
  #nothingToWrite(job: Job): void {
    const { batch } = job;
    const { spool, ledger } = this.#ctx;
    const settled = () => {
      if (this.#jobs.get(batch.key) !== job) return;
      this.#jobs.delete(batch.key);
      ledger.settle(batch);
      this.#maybeIdle();
    };
    if (spool) spool.remove(batch).then(settled, (err: unknown) => this.destroy(err as Error));
    else settled();
  }

  #requestStart(job: Job): void {
    if (job.body || job.queued) return;
    if (this.#running < this.#ctx.options.maxUploads) {
      this.#start(job);
    } else {
      job.queued = true;
      this.#queue.push(job);
    }
  }

  #start(job: Job): void {
    const { options, counters, ledger } = this.#ctx;
    this.#running += 1;
    counters.uploadsInFlight += 1;
    job.queued = false;
    const body = new PassThrough({ highWaterMark: BODY_BUFFER });
    // lib-storage destroys the body when the upload fails; that failure is reported by done().
    body.on('error', () => {});
    job.body = body;
    const { bucket, key } = job.batch;
    for (const data of job.pending) body.write(data);
    job.pending = [];
    if (job.ended) body.end();
    const upload = new Upload({
      client: this.#client(job),
      params: { ...options.objectParams, Bucket: bucket, Key: key, Body: body },
      partSize: options.partSize,
      queueSize: options.queueSize,
      leavePartsOnError: false,
    });
    job.upload = upload;
    upload.on('httpUploadProgress', (progress) => {
      const loaded = progress.loaded ?? 0;
      if (progress.part !== undefined) job.parts = Math.max(job.parts, progress.part);
      if (loaded > job.acked) {
        ledger.release(job.batch, loaded - job.acked);
        job.acked = loaded;
      }
      this.#reportInParts(job);
    });
    upload.done().then(
      () => this.#completed(job),
      (err: unknown) => this.#failed(job, err),
    );
    this.#reportInParts(job);
  }

  /** Tells the budget how many of the job's bytes are in full parts, on their way without more input. */
  #reportInParts(job: Job): void {
    const { partSize } = this.#ctx.options;
    const full = job.compressed > partSize ? Math.floor((job.compressed - 1) / partSize) * partSize : 0;
    this.#ctx.ledger.setInParts(job.batch, Math.max(0, full - job.acked));
  }

  #completed(job: Job): void {
    if (this.#jobs.get(job.batch.key) !== job) return;
    const { spool } = this.#ctx;
    // Never rejects: a segment that cannot be deleted is said (and a restart rewrites the same key with the same bytes).
    const cleanUp = spool ? spool.remove(job.batch) : Promise.resolve();
    cleanUp.then(
      () => {
        if (this.#jobs.get(job.batch.key) !== job) return;
        const { counters, ledger } = this.#ctx;
        const { batch } = job;
        this.#jobs.delete(batch.key);
        this.#uploadDone();
        counters.objects += 1;
        counters.eventsOut += batch.events;
        counters.bytesOut += job.compressed;
        ledger.settle(batch);
        this.#ctx.report('object', { bucket: batch.bucket, key: batch.key, events: batch.events, bytes: batch.bytes, compressedBytes: job.compressed, parts: Math.max(1, job.parts) });
        this.#ctx.report('delivered', { bucket: batch.bucket, key: batch.key, events: batch.events, acks: job.acks ?? [] });
        this.#maybeIdle();
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  #failed(job: Job, err: unknown): void {
    if (this.destroyed || this.#jobs.get(job.batch.key) !== job) return;
    job.failure = err;
    job.body?.destroy();
    this.#uploadDone();
    if (job.ended) this.#giveUp(job);
  }

  /** The upload failed and its end has come: back to the spool, into a dead letter, or reported lost. */
  #giveUp(job: Job): void {
    const { batch } = job;
    const { spool, ledger, counters, options } = this.#ctx;
    if (job.failure instanceof FencedError) {
      this.#fenced(job);
      return;
    }
    const failure = new UploadError(batch.bucket, batch.key, job.failure);
    if (spool && classify(job.failure).retry) {
      this.#jobs.delete(batch.key);
      ledger.settle(batch);
      spool.redeliver(batch, job.acks, failure);
      this.#maybeIdle();
      return;
    }
    const letter = {
      bucket: batch.bucket,
      key: batch.key,
      code: failure.s3Code,
      error: failure.message,
      time: new Date(options.clock.now()).toISOString(),
      events: batch.events,
      bytes: batch.bytes,
    };
    const kept: Promise<DeadLetter | null> = spool ? spool.bury(batch, letter, options.gzipLevel) : Promise.resolve(null);
    const settle = (dead: DeadLetter | null, keepError: unknown) => {
      if (this.#jobs.get(batch.key) !== job) return;
      this.#jobs.delete(batch.key);
      ledger.settle(batch);
      // A segment that could not be buried stays in the spool (a restart delivers it): this run is done with it.
      if (spool && dead === null) spool.stage?.settled(batch.key);
      if (dead !== null) {
        counters.deadLettered += 1;
        counters.deadLetteredEvents += batch.events;
      } else {
        counters.lostBatches += 1;
        counters.lostEvents += batch.events;
        this.#lost.push(keepError === null ? failure : new UploadError(batch.bucket, batch.key, new Error(`${failure.message}; and keeping it on disk failed: ${messageOf(keepError)}`, { cause: job.failure })));
      }
      const reported = dead ?? { ...letter, path: null, compressedBytes: job.compressed };
      this.#ctx.report('dead-letter', { ...reported, acks: job.acks ?? [] });
      this.#maybeIdle();
    };
    kept.then(
      (dead) => settle(dead, null),
      (err: unknown) => settle(null, err),
    );
  }

  /** Not to be written (lib-storage has aborted its multipart upload): its segment goes, and `'fenced'` says so. */
  #fenced(job: Job): void {
    const { batch } = job;
    const { spool } = this.#ctx;
    // Never rejects (see #completed).
    const cleanUp = spool ? spool.remove(batch) : Promise.resolve();
    cleanUp.then(
      () => {
        if (this.#jobs.get(batch.key) !== job) return;
        this.#jobs.delete(batch.key);
        this.#ctx.ledger.settle(batch);
        this.#ctx.counters.fenced += 1;
        this.#ctx.report('fenced', { bucket: batch.bucket, key: batch.key, events: batch.events, acks: job.acks ?? [] });
        this.#maybeIdle();
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  /** What the sink fails with at its end when batches were given up on with no place to keep them. */
  #lostError(): UploadError | undefined {
    const [first] = this.#lost;
    if (first === undefined || this.#lost.length === 1) return first;
    const more = this.#lost.length - 1;
    return Object.assign(first, { message: `${first.message} (and ${more} more batch${more === 1 ? '' : 'es'} not delivered: see the 'dead-letter' events and stats().lostEvents)` });
  }

  /** A running upload finished (either way): its slot goes to the next in line. */
  #uploadDone(): void {
    this.#running -= 1;
    this.#ctx.counters.uploadsInFlight -= 1;
    while (this.#running < this.#ctx.options.maxUploads && this.#queue.length > 0) this.#start(this.#queue.shift() as Job);
  }

  #maybeIdle(): void {
    if (this.#onIdle && this.#jobs.size === 0) {
      const done = this.#onIdle;
      this.#onIdle = null;
      done();
    }
  }

  async #mayPublish(fence: (key: string) => Promise<boolean>, batch: Batch): Promise<void> {
    if (!(await fence(batch.key))) throw new FencedError(batch.bucket, batch.key);
  }

  #abortMultipart(batch: Batch, uploadId: string, signal?: AbortSignal): Promise<boolean> {
    return abortMultipartUpload(this.#ctx, batch.bucket, batch.key, uploadId, signal);
  }

  /**
   * The client lib-storage talks to: requests go through the transport
   * (timeouts, retries, the sink's abort signal, which lib-storage would not
   * pass), the upload id is noted (in the spool too, so a recovery can abort
   * it), and AbortMultipartUpload never throws (so lib-storage reports the
   * failure that made it give up, not the abort's).
   */
  #client(job: Job): S3Client {
    const { transport, client } = this.#ctx;
    const signal = this.#abort.signal;
    const send = async (command: Command) => {
      if (command instanceof AbortMultipartUploadCommand) {
        // After a destroy, _destroy aborts every multipart upload itself.
        if (signal.aborted) return {};
        await this.#abortMultipart(job.batch, command.input.UploadId as string);
        if (job.uploadId === command.input.UploadId) job.uploadId = null;
        return {};
      }
      const { fence } = this.#ctx;
      const publishes = fence !== null && (command instanceof PutObjectCommand || command instanceof CompleteMultipartUploadCommand);
      const output = await transport.send(command, signal, publishes ? () => this.#mayPublish(fence, job.batch) : undefined);
      if (command instanceof CreateMultipartUploadCommand) {
        job.uploadId = (output as { UploadId?: string }).UploadId ?? null;
        if (job.uploadId !== null) this.#ctx.spool?.noteUpload(job.batch.key, job.uploadId);
      }
      return output;
    };
    return { config: client.config, send } as unknown as S3Client;
  }
}
