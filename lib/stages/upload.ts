import { setMaxListeners } from 'node:events';
import { Writable } from 'node:stream';
import {
  ChecksumAlgorithm, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand,
  type CompletedPart, type CreateMultipartUploadCommandInput, type CreateMultipartUploadCommandOutput, type S3Client, type UploadPartCommandOutput,
} from '@aws-sdk/client-s3';
import type { Batch, BytesPiece } from '../batch.js';
import type { Fence, SinkContext } from '../context.js';
import type { DeadLetter } from '../deadLetter.js';
import { FencedError, messageOf, UploadError } from '../errors.js';
import { abortMultipartUpload } from '../multipart.js';
import { Pieces, PartPool } from '../parts.js';
import { classify } from '../retry.js';
import type { Command } from '../transport.js';

/**
 * Stage 6 (a Writable): `BytesPiece`s (gzip) → S3 objects.
 *
 * A batch starts uploading once it has more than one part of bytes (its
 * parts then go to S3 while its window is still open) or when it ends (a
 * batch of at most one part becomes one PutObject). At most `maxUploads` run
 * at once; the others wait their turn, their bytes counted in the budget.
 * A multipart upload sends parts of `partSize`, `queueSize` at once, each
 * copied into a buffer of a pool (parts.ts) that the next part uses again;
 * the compressed pieces it was copied from are garbage at once.
 *
 * A write to a running upload calls back only when the upload holds less
 * than a whole part it cannot send: with S3 slow, this is where
 * backpressure starts.
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
 * object (PutObject, CompleteMultipartUpload) asks it first, and once more
 * (synchronously) as the request leaves; a fenced batch is aborted and
 * dropped (its segment too) and reported `'fenced'`: its input has lost its
 * records to another reader, which writes them.
 */
export function upload(ctx: SinkContext): Uploader {
  return new Uploader(ctx);
}

/** Parts S3 allows in one multipart upload. */
const MAX_PARTS = 10_000;
/** A single PutObject body larger than this is copied into a part buffer of the pool rather than a new one. */
const POOLED_PUT_BYTES = 1024 * 1024;
/** How long `destroy` waits for AbortMultipartUpload of the uploads it cuts off. */
const ABORT_TIMEOUT_MS = 5_000;

interface Job {
  batch: Batch;
  /** Compressed bytes not yet in a request. */
  pending: Pieces;
  compressed: number;
  /** Bytes S3 has acknowledged. */
  acked: number;
  /** Parts cut so far (the last one's number). */
  parts: number;
  partsInFlight: number;
  /** What CompleteMultipartUpload lists: the parts S3 has. */
  done: CompletedPart[];
  ended: boolean;
  queued: boolean;
  /** It has its upload slot. */
  started: boolean;
  /** CreateMultipartUpload is on its way. */
  creating: boolean;
  /** Settles once CreateMultipartUpload has been dealt with (its upload id noted, or its failure): what `destroy` waits for before it aborts. */
  created: Promise<void> | null;
  /** Its PutObject or CompleteMultipartUpload is on its way: nothing more to send. */
  publishing: boolean;
  uploadId: string | null;
  /** Cuts off its requests when it is given up on (and when the sink is destroyed); made when it starts (10 000 batches may wait their turn). */
  abort: AbortController | null;
  /** Why the upload was given up on; the rest of the batch is then dropped (the spool has it). */
  failure: unknown;
  /** Its requests have stopped since the failure, and its multipart upload is being aborted. */
  settling: boolean;
  /** The failure has been dealt with (its requests stopped, its multipart upload aborted). */
  failureSettled: boolean;
  /** The acks of its events (they came with its end). */
  acks: unknown[] | null;
  /** A write waiting for one of its parts to go: the job holds a whole part it cannot send yet. */
  waiting: (() => void) | null;
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
  #onIdle: (() => void) | null = null;
  /** Batches given up on with no place to keep them. */
  readonly #lost: UploadError[] = [];
  readonly #pool: PartPool;
  /** Whether the client sends checksums with every request that takes one (then a multipart upload declares CRC32, as lib-storage does). */
  #checksums: Promise<boolean> | null = null;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#ctx = ctx;
    const { partSize, queueSize } = ctx.options;
    this.#pool = new PartPool(partSize, queueSize);
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
    job.pending.push(piece.data);
    if (!job.started) {
      if (job.compressed > this.#ctx.options.partSize) this.#requestStart(job);
      callback();
      return;
    }
    this.#pump(job);
    this.#reportInParts(job);
    // A whole part it cannot send yet (its parts in flight are queueSize): take no more until one goes.
    if (job.pending.bytes >= this.#ctx.options.partSize && job.failure === null) job.waiting = callback;
    else callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const job of this.#jobs.values()) if (!job.ended) this.#end(job);
    this.#onIdle = () => callback(this.#lostError());
    this.#maybeIdle();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#queue = [];
    const cutOff = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of cutOff) {
      job.abort?.abort();
      this.#ctx.ledger.settle(job.batch);
      // A write waiting for a part to go is called back (Writable then fails it and the writes behind it): a callback is never left uncalled.
      const waiting = job.waiting;
      job.waiting = null;
      if (waiting !== null) process.nextTick(waiting);
    }
    this.#ctx.ledger.wake();
    // Never leave a multipart upload behind to bill the user; but do not hold a destroy up for long.
    const deadline = AbortSignal.timeout(ABORT_TIMEOUT_MS);
    // A CreateMultipartUpload on its way (cut off just now) may still have answered: its upload is aborted too.
    const abort = async (job: Job) => {
      if (job.creating && job.created !== null) await job.created;
      if (job.uploadId !== null) await this.#abortMultipart(job.batch, job.uploadId, deadline);
    };
    Promise.all(cutOff.map(abort)).then(() => callback(error), (err: unknown) => callback((error ?? err) as Error));
  }

  #job(batch: Batch): Job {
    let job = this.#jobs.get(batch.key);
    if (!job) {
      job = {
        batch, pending: new Pieces(), compressed: 0, acked: 0, parts: 0, partsInFlight: 0, done: [], ended: false, queued: false, started: false,
        creating: false, created: null, publishing: false, uploadId: null, abort: null, failure: null, settling: false, failureSettled: false, acks: null, waiting: null,
      };
      this.#jobs.set(batch.key, job);
    }
    return job;
  }

  #end(job: Job): void {
    job.ended = true;
    if (job.failure !== null) {
      if (job.failureSettled) this.#giveUp(job);
    } else if (job.started) this.#pump(job);
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
    if (job.started || job.queued) return;
    if (this.#running < this.#ctx.options.maxUploads) {
      this.#start(job);
    } else {
      job.queued = true;
      this.#queue.push(job);
    }
  }

  #start(job: Job): void {
    this.#running += 1;
    this.#ctx.counters.uploadsInFlight += 1;
    job.queued = false;
    job.started = true;
    job.abort = new AbortController();
    // Each request in flight listens to it (and stops listening when done): up to queueSize at once.
    setMaxListeners(0, job.abort.signal);
    this.#pump(job);
    this.#reportInParts(job);
  }

  /**
   * Sends what can be sent: one PutObject for a batch that ended within one
   * part; otherwise CreateMultipartUpload, then parts of `partSize` as they
   * fill, at most `queueSize` at once, the last (shorter) one after the end,
   * and CompleteMultipartUpload once S3 has them all.
   */
  #pump(job: Job): void {
    if (!job.started || job.failure !== null || job.publishing || this.#jobs.get(job.batch.key) !== job) return;
    const { partSize, queueSize } = this.#ctx.options;
    if (job.uploadId === null) {
      if (job.creating) return;
      if (job.ended && job.parts === 0 && job.pending.bytes <= partSize) this.#putObject(job);
      else this.#createMultipart(job);
      return;
    }
    while (job.partsInFlight < queueSize && (job.pending.bytes >= partSize || (job.ended && job.pending.bytes > 0))) {
      if (job.parts >= MAX_PARTS) {
        this.#fail(job, new Error(`more than ${MAX_PARTS} parts: S3 takes no more in one object (raise partSize, or lower maxObjectBytes)`));
        return;
      }
      this.#sendPart(job);
    }
    if (job.waiting !== null && job.pending.bytes < partSize) this.#wake(job);
    if (job.ended && job.pending.bytes === 0 && job.partsInFlight === 0) this.#completeMultipart(job);
  }

  #wake(job: Job): void {
    const callback = job.waiting;
    job.waiting = null;
    callback?.();
  }

  #putObject(job: Job): void {
    const { options, fence } = this.#ctx;
    const { bucket, key } = job.batch;
    job.publishing = true;
    job.parts = 1;
    const size = job.pending.bytes;
    const pooled = size > POOLED_PUT_BYTES ? this.#pool.take() : null;
    const body = pooled === null ? job.pending.takeAll() : job.pending.copyOut(size, pooled);
    const command = new PutObjectCommand({ ...options.objectParams, Bucket: bucket, Key: key, Body: body });
    this.#send(job, command, fence).then(
      () => {
        if (pooled !== null) this.#pool.give(pooled);
        this.#acknowledged(job, size);
        this.#completed(job);
      },
      (err: unknown) => {
        if (pooled !== null) this.#pool.give(pooled);
        this.#dropped(job, size);
        this.#fail(job, err);
      },
    );
  }

  #createMultipart(job: Job): void {
    const { options, spool } = this.#ctx;
    const { bucket, key } = job.batch;
    job.creating = true;
    this.#checksums ??= checksumsWhenSupported(this.#ctx.client);
    job.created = this.#checksums
      .then((checksums) => {
        job.abort?.signal.throwIfAborted();
        const input: CreateMultipartUploadCommandInput = { ...options.objectParams, Bucket: bucket, Key: key };
        // As lib-storage does: a client that sends checksums with each part declares their algorithm up front.
        if (checksums) input.ChecksumAlgorithm = ChecksumAlgorithm.CRC32;
        return this.#send<CreateMultipartUploadCommandOutput>(job, new CreateMultipartUploadCommand(input));
      })
      .then(
        (output) => {
          job.creating = false;
          if (output.UploadId === undefined) throw new Error('CreateMultipartUpload answered without an UploadId');
          job.uploadId = output.UploadId;
          spool?.noteUpload(key, job.uploadId);
          // Destroyed while it was on its way: `destroy` waits for `created` and aborts it.
          if (this.#jobs.get(key) !== job) return;
          if (job.failure !== null) this.#settleFailure(job);
          else this.#pump(job);
        },
      )
      .catch((err: unknown) => {
        job.creating = false;
        this.#fail(job, err);
      });
  }

  #sendPart(job: Job): void {
    const { partSize, objectParams } = this.#ctx.options;
    const { bucket, key } = job.batch;
    const size = Math.min(partSize, job.pending.bytes);
    const buffer = this.#pool.take();
    const body = job.pending.copyOut(size, buffer);
    job.parts += 1;
    job.partsInFlight += 1;
    const partNumber = job.parts;
    const command = new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: job.uploadId as string, PartNumber: partNumber, Body: body, ExpectedBucketOwner: objectParams.ExpectedBucketOwner });
    this.#send<UploadPartCommandOutput>(job, command).then(
      (output) => {
        this.#pool.give(buffer);
        job.partsInFlight -= 1;
        if (job.failure !== null) {
          this.#dropped(job, size);
          this.#settleFailure(job);
          return;
        }
        if (output.ETag === undefined) {
          this.#fail(job, new Error(`UploadPart ${partNumber} answered without an ETag`));
          return;
        }
        const { ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256 } = output;
        job.done.push({ PartNumber: partNumber, ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256 });
        this.#acknowledged(job, size);
        this.#pump(job);
        this.#reportInParts(job);
      },
      (err: unknown) => {
        this.#pool.give(buffer);
        job.partsInFlight -= 1;
        this.#dropped(job, size);
        this.#fail(job, err);
      },
    );
  }

  #completeMultipart(job: Job): void {
    const { options, fence } = this.#ctx;
    const { bucket, key } = job.batch;
    job.publishing = true;
    const parts = job.done.sort((a, b) => (a.PartNumber as number) - (b.PartNumber as number));
    const command = new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: job.uploadId as string, MultipartUpload: { Parts: parts }, ExpectedBucketOwner: options.objectParams.ExpectedBucketOwner });
    this.#send(job, command, fence).then(
      () => {
        job.uploadId = null;
        this.#completed(job);
      },
      (err: unknown) => this.#fail(job, err),
    );
  }

  /**
   * Through the transport (timeouts, retries), cut off with the job; a
   * request that publishes the object asks the fence first, at every attempt.
   */
  #send<T>(job: Job, command: Command, fence: Fence | null = null): Promise<T> {
    const { batch } = job;
    const gate = fence === null ? undefined : { ask: () => this.#mayPublish(fence, batch), holds: () => fence.holds(batch.key) };
    return this.#ctx.transport.send<T>(command, job.abort?.signal, gate);
  }

  /** S3 has `bytes` more of the job's bytes: they leave the budget. */
  #acknowledged(job: Job, bytes: number): void {
    if (this.#jobs.get(job.batch.key) !== job) return;
    job.acked += bytes;
    this.#ctx.ledger.release(job.batch, bytes);
  }

  /** `bytes` of the job's sent in a request that failed or was cut off: dropped (the spool has them), they leave the budget. */
  #dropped(job: Job, bytes: number): void {
    if (this.#jobs.get(job.batch.key) !== job) return;
    this.#ctx.ledger.release(job.batch, bytes);
  }

  /** Tells the budget how many of the job's bytes are in full parts, on their way without more input. */
  #reportInParts(job: Job): void {
    const { partSize } = this.#ctx.options;
    const full = job.compressed > partSize ? Math.floor((job.compressed - 1) / partSize) * partSize : 0;
    this.#ctx.ledger.setInParts(job.batch, Math.max(0, full - job.acked));
  }

  #completed(job: Job): void {
    if (this.#jobs.get(job.batch.key) !== job) return;
    this.#uploadDone();
    const { spool } = this.#ctx;
    // Never rejects: a segment that cannot be deleted is said (and a restart rewrites the same key with the same bytes).
    const cleanUp = spool ? spool.remove(job.batch) : Promise.resolve();
    cleanUp.then(
      () => {
        if (this.#jobs.get(job.batch.key) !== job) return;
        const { counters, ledger } = this.#ctx;
        const { batch } = job;
        this.#jobs.delete(batch.key);
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

  /**
   * A request of the job failed for good (or the fence said no): its other
   * requests are cut off, its bytes dropped (the budget is settled with its
   * end), and once nothing of it is in flight its multipart upload is aborted
   * and the batch given up on.
   */
  #fail(job: Job, err: unknown): void {
    if (this.destroyed || this.#jobs.get(job.batch.key) !== job) return;
    if (job.failure !== null) {
      // One more of its requests stopped (the first failure cut it off).
      this.#settleFailure(job);
      return;
    }
    job.failure = err;
    job.abort?.abort();
    this.#ctx.ledger.release(job.batch, job.pending.clear());
    // Its parts in flight are cut off: none of their bytes will drain by going to S3 (each is released as it stops).
    this.#ctx.ledger.setInParts(job.batch, 0);
    this.#wake(job);
    this.#settleFailure(job);
  }

  #settleFailure(job: Job): void {
    if (job.settling || job.creating || job.partsInFlight > 0 || this.#jobs.get(job.batch.key) !== job) return;
    job.settling = true;
    const aborted = job.uploadId === null ? Promise.resolve(true) : this.#abortMultipart(job.batch, job.uploadId);
    aborted
      .then(() => {
        if (this.#jobs.get(job.batch.key) !== job) return;
        job.failureSettled = true;
        job.uploadId = null;
        this.#uploadDone();
        if (job.ended) this.#giveUp(job);
      })
      .catch((err: unknown) => this.destroy(err as Error));
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

  /** Not to be written (its multipart upload is aborted): its segment goes, and `'fenced'` says so. */
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
    // Nothing uploads: the pool's buffers go (up to queueSize × partSize, 32 MiB by default, would otherwise stay for the sink's life).
    if (this.#running === 0) this.#pool.clear();
  }

  #maybeIdle(): void {
    if (this.#onIdle && this.#jobs.size === 0) {
      const done = this.#onIdle;
      this.#onIdle = null;
      done();
    }
  }

  async #mayPublish(fence: Fence, batch: Batch): Promise<void> {
    if (!(await fence.mayPublish(batch.key))) throw new FencedError(batch.bucket, batch.key);
  }

  #abortMultipart(batch: Batch, uploadId: string, signal?: AbortSignal): Promise<boolean> {
    return abortMultipartUpload(this.#ctx, batch.bucket, batch.key, uploadId, signal);
  }
}

/** Whether `client` computes a checksum for every request that can carry one (`requestChecksumCalculation: 'WHEN_SUPPORTED'`, the SDK's default). */
async function checksumsWhenSupported(client: S3Client): Promise<boolean> {
  const setting = (client.config as { requestChecksumCalculation?: unknown }).requestChecksumCalculation;
  if (typeof setting !== 'function') return false;
  return (await (setting as () => Promise<string>)()) === 'WHEN_SUPPORTED';
}
