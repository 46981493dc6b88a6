import { PassThrough, Writable } from 'node:stream';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Batch, BytesPiece } from '../batch.js';
import type { SinkContext } from '../context.js';
import { UploadError } from '../errors.js';

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
  }

  override _write(piece: BytesPiece, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const job = this.#job(piece.batch);
    if ('end' in piece) {
      job.ended = true;
      if (job.body) job.body.end();
      else this.#requestStart(job);
      callback();
      return;
    }
    job.compressed += piece.data.length;
    if (!job.body) {
      job.pending.push(piece.data);
      if (job.compressed > this.#ctx.options.partSize) this.#requestStart(job);
      callback();
      return;
    }
    const accepted = job.body.write(piece.data);
    this.#reportInParts(job);
    if (accepted) callback();
    else job.body.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const job of this.#jobs.values()) {
      if (job.ended) continue;
      job.ended = true;
      if (job.body) job.body.end();
      else this.#requestStart(job);
    }
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
      this.#ctx.ledger.settle(job.batch);
    }
    this.#ctx.ledger.wake();
    const multipart = cutOff.filter((job) => job.uploadId !== null);
    if (multipart.length === 0) {
      callback(error);
      return;
    }
    // Never leave a multipart upload behind to bill the user.
    Promise.allSettled(
      multipart.map((job) =>
        this.#ctx.client.send(new AbortMultipartUploadCommand({ Bucket: job.batch.bucket, Key: job.batch.key, UploadId: job.uploadId as string }), {
          abortSignal: AbortSignal.timeout(ABORT_TIMEOUT_MS),
        }),
      ),
    ).then(() => callback(error));
  }

  #job(batch: Batch): Job {
    let job = this.#jobs.get(batch);
    if (!job) {
      job = { batch, pending: [], compressed: 0, acked: 0, parts: 0, ended: false, queued: false, body: null, upload: null, uploadId: null };
      this.#jobs.set(batch, job);
    }
    return job;
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
    job.body = body;
    for (const data of job.pending) body.write(data);
    job.pending = [];
    if (job.ended) body.end();
    const upload = new Upload({
      client: this.#transport(job),
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

  #completed(job: Job): void {
    if (this.#jobs.get(job.batch) !== job) return;
    const { counters, ledger } = this.#ctx;
    this.#jobs.delete(job.batch);
    this.#running -= 1;
    counters.uploadsInFlight -= 1;
    counters.objects += 1;
    counters.eventsOut += job.batch.events;
    counters.bytesOut += job.compressed;
    ledger.settle(job.batch);
    this.#ctx.emit('object', {
      bucket: job.batch.bucket,
      key: job.batch.key,
      events: job.batch.events,
      bytes: job.batch.bytes,
      compressedBytes: job.compressed,
      parts: Math.max(1, job.parts),
    });
    while (this.#running < this.#ctx.options.maxUploads && this.#queue.length > 0) this.#start(this.#queue.shift() as Job);
    this.#maybeIdle();
  }

  #failed(job: Job, err: unknown): void {
    if (this.destroyed || this.#jobs.get(job.batch) !== job) return;
    this.destroy(new UploadError(job.batch.bucket, job.batch.key, err));
  }

  #maybeIdle(): void {
    if (this.#onIdle && this.#jobs.size === 0) {
      const done = this.#onIdle;
      this.#onIdle = null;
      done();
    }
  }

  /**
   * The client lib-storage talks to: every request carries the sink's abort
   * signal (lib-storage passes none, so `destroy` could not cut requests off
   * otherwise), and the multipart upload id is noted for AbortMultipartUpload.
   */
  #transport(job: Job): S3Client {
    const client = this.#ctx.client;
    const signal = this.#abort.signal;
    const send = async (command: Parameters<S3Client['send']>[0], options?: { abortSignal?: AbortSignal }) => {
      const output = await client.send(command, { ...options, abortSignal: signal });
      if (command instanceof CreateMultipartUploadCommand) job.uploadId = (output as { UploadId?: string }).UploadId ?? null;
      return output;
    };
    return { config: client.config, send } as unknown as S3Client;
  }
}
