import { setMaxListeners } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Batch, BytesPiece } from '../batch.js';
import type { SinkContext } from '../context.js';
import type { SpoolFile } from '../deadLetter.js';
import { messageOf, UploadError } from '../errors.js';
import { abortMultipartUpload } from '../multipart.js';
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
 * given up on is aborted (AbortMultipartUpload) and, with a `deadLetter`
 * directory, written there in full; without one it fails the sink.
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
  /** The copy for the dead-letter directory, while it uploads. */
  spool: SpoolFile | null;
  /** Why the upload was given up on; the rest of the batch then goes to the spool only. */
  failure: unknown;
}

export class Uploader extends Writable {
  readonly #ctx: SinkContext;
  readonly #jobs = new Map<Batch, Job>();
  #queue: Job[] = [];
  #running = 0;
  readonly #abort = new AbortController();
  #onIdle: (() => void) | null = null;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#ctx = ctx;
    // Every request in flight listens to it (and stops listening when done): up to maxUploads × queueSize at once.
    setMaxListeners(0, this.#abort.signal);
  }

  override _write(piece: BytesPiece, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const job = this.#job(piece.batch);
    if ('end' in piece) {
      this.#end(job);
      callback();
      return;
    }
    job.compressed += piece.data.length;
    if (job.failure !== null) {
      // Given up on: the rest of the batch goes to its dead letter.
      this.#ctx.ledger.release(job.batch, piece.data.length);
      waitFor([job.spool?.write(piece.data) === false ? job.spool : null], callback);
      return;
    }
    if (!job.body) {
      job.pending.push(piece.data);
      if (job.compressed > this.#ctx.options.partSize) this.#requestStart(job);
      callback();
      return;
    }
    const bodyFull = !job.body.write(piece.data);
    const spoolFull = job.spool !== null && !job.spool.write(piece.data);
    this.#reportInParts(job);
    waitFor([bodyFull ? job.body : null, spoolFull ? job.spool : null], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const job of this.#jobs.values()) if (!job.ended) this.#end(job);
    this.#onIdle = () => callback();
    this.#maybeIdle();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#abort.abort();
    this.#queue = [];
    const cutOff = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of cutOff) {
      job.body?.destroy();
      void job.upload?.abort();
      job.spool?.abandon();
      this.#ctx.ledger.settle(job.batch);
    }
    this.#ctx.ledger.wake();
    // Never leave a multipart upload behind to bill the user; but do not hold a destroy up for long.
    const deadline = AbortSignal.timeout(ABORT_TIMEOUT_MS);
    Promise.all(cutOff.filter((job) => job.uploadId !== null).map((job) => this.#abortMultipart(job.batch, job.uploadId as string, deadline))).then(() => callback(error));
  }

  #job(batch: Batch): Job {
    let job = this.#jobs.get(batch);
    if (!job) {
      job = { batch, pending: [], compressed: 0, acked: 0, parts: 0, ended: false, queued: false, body: null, upload: null, uploadId: null, spool: null, failure: null };
      this.#jobs.set(batch, job);
    }
    return job;
  }

  #end(job: Job): void {
    job.ended = true;
    if (job.failure !== null) this.#deadLetter(job);
    else if (job.body) job.body.end();
    else this.#requestStart(job);
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
    const { options, counters, ledger, deadLetters } = this.#ctx;
    this.#running += 1;
    counters.uploadsInFlight += 1;
    job.queued = false;
    const body = new PassThrough({ highWaterMark: BODY_BUFFER });
    job.body = body;
    job.spool = deadLetters?.open(job.batch) ?? null;
    for (const data of job.pending) {
      body.write(data);
      job.spool?.write(data);
    }
    job.pending = [];
    if (job.ended) body.end();
    const upload = new Upload({
      client: this.#client(job),
      params: { Bucket: job.batch.bucket, Key: job.batch.key, Body: body, ContentType: 'application/gzip', ...(options.acl ? { ACL: options.acl } : {}) },
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

  async #completed(job: Job): Promise<void> {
    if (this.#jobs.get(job.batch) !== job) return;
    await job.spool?.discard();
    if (this.#jobs.get(job.batch) !== job) return;
    const { counters, ledger } = this.#ctx;
    this.#jobs.delete(job.batch);
    this.#uploadDone();
    counters.objects += 1;
    counters.eventsOut += job.batch.events;
    counters.bytesOut += job.compressed;
    ledger.settle(job.batch);
    this.#ctx.report('object', {
      bucket: job.batch.bucket,
      key: job.batch.key,
      events: job.batch.events,
      bytes: job.batch.bytes,
      compressedBytes: job.compressed,
      parts: Math.max(1, job.parts),
    });
    this.#maybeIdle();
  }

  #failed(job: Job, err: unknown): void {
    if (this.destroyed || this.#jobs.get(job.batch) !== job) return;
    if (!job.spool) {
      this.destroy(new UploadError(job.batch.bucket, job.batch.key, err));
      return;
    }
    job.failure = err;
    job.body?.destroy();
    this.#uploadDone();
    if (job.ended) this.#deadLetter(job);
  }

  /** The whole batch is in its spool: it becomes a dead letter. */
  #deadLetter(job: Job): void {
    const { batch } = job;
    const failure = new UploadError(batch.bucket, batch.key, job.failure);
    (job.spool as SpoolFile)
      .commit({
        bucket: batch.bucket,
        key: batch.key,
        code: failure.s3Code,
        error: failure.message,
        time: new Date(this.#ctx.options.clock.now()).toISOString(),
        events: batch.events,
        bytes: batch.bytes,
        compressedBytes: job.compressed,
      })
      .then(
        (letter) => {
          if (this.#jobs.get(batch) !== job) return;
          this.#jobs.delete(batch);
          this.#ctx.ledger.settle(batch);
          this.#ctx.counters.deadLettered += 1;
          this.#ctx.counters.deadLetteredEvents += batch.events;
          this.#ctx.report('dead-letter', letter);
          this.#maybeIdle();
        },
        (err: unknown) => this.destroy(new UploadError(batch.bucket, batch.key, new Error(`${failure.message}; and writing its dead letter failed: ${messageOf(err)}`, { cause: job.failure }))),
      );
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

  #abortMultipart(batch: Batch, uploadId: string, signal?: AbortSignal): Promise<boolean> {
    return abortMultipartUpload(this.#ctx, batch.bucket, batch.key, uploadId, signal);
  }

  /**
   * The client lib-storage talks to: requests go through the transport
   * (timeouts, retries, the sink's abort signal, which lib-storage would not
   * pass), the upload id is noted, and AbortMultipartUpload never throws (so
   * lib-storage reports the failure that made it give up, not the abort's).
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
      const output = await transport.send(command, signal);
      if (command instanceof CreateMultipartUploadCommand) job.uploadId = (output as { UploadId?: string }).UploadId ?? null;
      return output;
    };
    return { config: client.config, send } as unknown as S3Client;
  }
}

/** Calls back once every given stream that asked for it has drained. */
function waitFor(streams: ({ once(event: 'drain', fn: () => void): unknown } | null)[], callback: () => void): void {
  const full = streams.filter((s) => s !== null);
  if (full.length === 0) {
    callback();
    return;
  }
  let waiting = full.length;
  for (const stream of full) stream.once('drain', () => --waiting === 0 && callback());
}
