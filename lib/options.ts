import type { ObjectCannedACL, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { systemClock, type Clock } from './clock.js';
import { OptionError } from './errors.js';
import type { ResolvedTime, TimeOf, TimeOption } from './eventTime.js';
import { FIELD_PATH } from './fields.js';
import { checkPrefix, normalizePrefix, PREFIX_RULE } from './key.js';
import { MAX_TAGS, objectParams, SSE_MODES, STORAGE_CLASSES, tagProblem, type ObjectParams, type ObjectStorageClass, type SseMode } from './objectParams.js';
import { DEFAULT_RETRY, longestRequestMs, type RetryPolicy } from './retry.js';
import type { FsyncPolicy, ResolvedSpool, SpoolOptions } from './spool.js';
import { compileTemplate, type PrefixTemplate } from './template.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** S3's limits on multipart uploads. */
export const S3_MIN_PART_SIZE = 5 * MiB;
export const S3_MAX_PART_SIZE = 5 * GiB;
export const S3_MAX_PARTS = 10_000;

/**
 * Options of `s3Sink()` and `sinkContext()`. All are validated once, up front;
 * a bad one throws `OptionError` naming it, the value and what was expected.
 */
export interface SinkOptions {
  /**
   * Bucket for events that do not name their own. Required in lines mode.
   * Default: none. Memory: none.
   */
  bucket?: string;
  /**
   * Prefix for events that do not name their own; `logs/` and `logs` are the
   * same, `''` is the bucket root. May hold `{field}` or `{a.b}` placeholders,
   * filled from each event's JSON (one stream fans out to several prefixes).
   * Default: `''`. Memory: none.
   */
  prefix?: string;
  /**
   * Where events whose templated prefix cannot be filled go, in the same bucket
   * (not JSON, field missing, empty, or a filled prefix that breaks the prefix
   * rule of `prefixProblem` in key.ts: a `.` or `..` segment, a control
   * character, a lone surrogate).
   * Default: `'_unrouted/'` (Athena skips `_` folders). Memory: none.
   */
  deadLetterPrefix?: string;
  /**
   * Configuration of the S3 client the sink creates (endpoint, region,
   * credentials, forcePathStyle, requestChecksumCalculation, ...); the sink
   * destroys that client when it finishes. Not with `client`.
   * Default: `{}` (the SDK's default chain for region and credentials).
   * Memory: one HTTP agent, at most `maxUploads × queueSize` sockets.
   */
  s3?: S3ClientConfig;
  /**
   * An S3 client you own; the sink never destroys it. Not with `s3`. Its HTTP
   * agent should have a socket for each of `maxUploads × queueSize` requests
   * (the SDK's default agent has 50): with a Kafka worker, a request that
   * waits for a socket has passed the fence's last check (see the README's
   * Fencing). Default: none. Memory: none.
   */
  client?: S3Client;
  /**
   * Canned ACL for every object, e.g. `'bucket-owner-full-control'` when writing
   * to another account's bucket (needs s3:PutObjectAcl). Default: none (the
   * bucket's default). Memory: none.
   */
  acl?: ObjectCannedACL;
  /**
   * Server-side encryption of every object: `'AES256'` (S3's keys),
   * `'aws:kms'` (a KMS key: `sseKmsKeyId`, or the account's `aws/s3` key), or
   * `'aws:kms:dsse'` (two layers). Default: none (the bucket's default
   * encryption). Memory: none.
   */
  sse?: SseMode;
  /**
   * The KMS key (id, ARN or alias) for `sse: 'aws:kms'`; alone, it implies
   * `sse: 'aws:kms'`. The principal needs kms:GenerateDataKey and
   * kms:Decrypt on it (multipart uploads decrypt the data key for each part).
   * Default: none. Memory: none.
   */
  sseKmsKeyId?: string;
  /** With `aws:kms`: use (true) or not (false) an S3 Bucket Key, fewer KMS requests. Default: the bucket's setting. Memory: none. */
  sseBucketKey?: boolean;
  /** Storage class of every object, e.g. `'STANDARD_IA'`, `'GLACIER_IR'`. Default: the bucket's (`STANDARD`). Memory: none. */
  storageClass?: ObjectStorageClass;
  /**
   * Tags of every object, `{ team: 'logs' }`: at most 10, sent with the
   * object (`x-amz-tagging`, needs s3:PutObjectTagging). Default: none. Memory: none.
   */
  tags?: Record<string, string>;
  /** The objects' Content-Type. Default: `'application/gzip'`. Memory: none. */
  contentType?: string;
  /**
   * The objects' Content-Encoding, e.g. `'gzip'` with `contentType:
   * 'application/x-ndjson'` (then HTTP clients that honour it, browsers and
   * curl --compressed, hand out the lines unzipped). Default: none. Memory: none.
   */
  contentEncoding?: string;
  /**
   * The 12-digit account id that must own the bucket: every request of an
   * upload fails (403) if another account owns it. Default: none. Memory: none.
   */
  expectedBucketOwner?: string;
  /**
   * `'records'`: object mode, each chunk `{ bucket?, prefix?, payload }`.
   * `'lines'`: bytes, each line one event (`\n` or `\r\n`; empty lines skipped).
   * Default: `'records'`. Memory: none.
   */
  input?: 'records' | 'lines';
  /**
   * Lines mode: you promise never to change a Buffer once written, so the
   * sink may keep the lines of a chunk where they lie instead of copying them
   * out (Node's streams of files, pipes, sockets and `process.stdin` make a
   * new Buffer for every chunk; a writer that fills the same Buffer again
   * must leave this off). Only lines to one fixed destination use it; about
   * 8 % less CPU for them. Default: false (a chunk's lines are copied out
   * while it is written). Memory: a chunk kept is at most twice the bytes its
   * lines are counted for in the budget (a stretch of lines under half of its
   * chunk is copied all the same); before `window` counts them, the chunks
   * held whole are up to twice what their copies would be.
   */
  keepChunks?: boolean;
  /**
   * Length of a batch window in ms; windows are aligned to multiples of it
   * since the epoch (UTC), and each destination writes at most one object per
   * window (more only when `maxObjectBytes` or the memory budget says so).
   * Default: `60_000`. Memory: events are held (compressed) until their window closes
   * or their part is full, within `maxBufferedBytes`.
   */
  windowMs?: number;
  /**
   * Size of a multipart part in bytes (S3: at least 5 MiB). A batch of fewer
   * compressed bytes is written with one PutObject.
   * Default: 8 MiB. Memory: each streaming upload holds up to `(queueSize + 1) × partSize`,
   * always within `maxBufferedBytes`.
   */
  partSize?: number;
  /**
   * Parts of one object in flight at once.
   * Default: 4. Memory: see `partSize`.
   */
  queueSize?: number;
  /**
   * Objects being uploaded at once (across destinations); more wait their turn,
   * their bytes counted in `maxBufferedBytes`.
   * Default: 16. Memory: up to `maxUploads × queueSize` requests and sockets.
   */
  maxUploads?: number;
  /**
   * The memory budget: line bytes not yet compressed, compressed bytes not yet
   * in S3, and 384 KiB per running compressor. When full, writes wait
   * (backpressure); when full of batches that cannot make a part yet, the
   * largest is closed early (one more object in that window).
   * Default: 64 MiB. Memory: this, plus a few stream buffers of 64 KiB.
   */
  maxBufferedBytes?: number;
  /**
   * A batch closes (and the next events start a new object) before its lines
   * pass this many bytes, uncompressed (as Vector's `batch.max_bytes`). The
   * compressed object is never larger than this plus gzip's framing.
   * Default: 1 GiB. Memory: none (objects stream out in parts).
   */
  maxObjectBytes?: number;
  /**
   * Longest event: a longer line (lines mode) or encoded payload is reported
   * with a `'rejected'` event and skipped; the events around it go on.
   * Default: 1 MiB (less when `maxBufferedBytes / 4` or `maxObjectBytes` is smaller).
   * Memory: one partial line of up to this size.
   */
  maxLineBytes?: number;
  /** gzip level, 0 (store) to 9 (smallest). Default: 6. Memory: none (same state at every level). */
  gzipLevel?: number;
  /**
   * Compress a batch larger than 1 MiB in pieces of 1 MiB, several at once
   * (one per core), so that one hot destination uses every core. The pieces
   * are joined into ONE gzip member (pigz's way: each primed with the 32 KiB
   * before it), which every gzip reader reads whole, 0.02 % larger than one
   * stream. The pieces of all batches share one cap per sink: cores + 1 at
   * once (at most libuv's thread pool + 1: 5 by default), fewer when their
   * compressors would take more than a quarter of `maxBufferedBytes`.
   * `false`: a compressor (one thread) per streaming batch.
   * Default: true. Memory: 384 KiB per slot of that cap, set aside once from
   * the budget (1.1 MiB on 2 cores, 1.9 MiB at most with the default thread
   * pool), plus 32 KiB per streaming batch; without it, 384 KiB per streaming
   * batch. All within the budget.
   */
  parallelGzip?: boolean;
  /**
   * How requests that fail in a way that can pass (5xx, SlowDown, throttling,
   * timeouts, broken connections) are retried: `attempts` tries in all, waiting
   * `random × min(capMs, baseMs × 2^(n-1))` before retry n. Permanent failures
   * (403, NoSuchBucket, InvalidAccessKeyId, ...) are never retried.
   * Default: `{ attempts: 10, baseMs: 200, capMs: 20_000 }`. Memory: a part is
   * held while it is retried (it is within the budget already).
   */
  retry?: Partial<RetryPolicy>;
  /**
   * An attempt that has not been answered within this many ms is cut off and
   * retried (a part of `partSize` must go up within it).
   * Default: 120 000. Memory: none.
   */
  requestTimeoutMs?: number;
  /**
   * A local directory for batches whose upload was given up on: each is
   * written there as the same .gz object under the same key, with a JSON
   * sidecar naming bucket, key, error and time, and the sink goes on. Without
   * it, a given-up upload fails the sink. While a batch uploads, a copy of its
   * gzip bytes is kept in `DIR/.spool/` and deleted when the object is complete.
   * Default: none. Memory: none (disk: the objects being uploaded).
   */
  deadLetter?: string;
  /**
   * At start, abort multipart uploads in the default bucket under the sink's
   * prefixes that are older than this many ms and whose keys are in the
   * sink's format (left behind by a crash).
   *
   * It must never abort an upload that may still be live (this process's, or
   * a sibling's with the same settings), so it is at least `orphanAgeFloor`:
   *
   *     windowMs + rounds × request + 10 min
   *     request = attempts × requestTimeoutMs + Σ min(capMs, baseMs × 2^(n-1)) for n = 1 … attempts-1
   *     rounds  = ceil((ceil(maxBufferedBytes / partSize) + 1) / queueSize) + 1
   *
   * A multipart upload starts after its batch opened and the batch closes at
   * most a window later; what it still holds then is within the budget, at
   * most `ceil(maxBufferedBytes / partSize) + 1` parts, sent `queueSize` at a
   * time, each request taking at most `request` with every retry; then one
   * CompleteMultipartUpload. The 10 minutes cover clocks: S3 stamps an
   * upload's start, this host computes the cut-off. With the defaults that
   * is about 96 minutes. Siblings with a longer window or timeouts need more.
   * Default: off. Memory: none.
   */
  sweepOrphans?: number | false;
  /**
   * The durable spool: every event is written to a file in `dir` before it is
   * compressed, reported `'durable'` once fsynced (per `fsync`), and deleted
   * once its object is in S3. At start, what an earlier run left (a crash,
   * `kill -9`) is delivered under the keys it had. Retryable failures (an S3
   * outage) are retried from disk for as long as it takes; a batch given up
   * on moves to `dir/dead/`. One process per directory. Not with `deadLetter`.
   * Default: none. Memory: none (disk: the events not yet in S3, up to
   * `maxBytes`, default 8 GiB; past it writes wait).
   */
  spool?: SpoolOptions;
  /**
   * Event time: batches and keys follow each event's own time instead of its
   * arrival. `{ field: 'ts' }` (a field of the event's JSON, or a dotted path
   * like `event.time`) or `(payload) => time` (a function of the payload: a
   * Buffer in lines mode). The time is epoch seconds (below 10^11), epoch
   * milliseconds, an ISO 8601 string (UTC without an offset) or a Date; an
   * event without a usable one (missing, not a time, before 1970, after 9999)
   * is batched by its arrival and counted in `stats().untimed`.
   *
   * A batch (one destination in one window of event time) waits for late
   * events until the `clock` passes its window's end plus `lateMs`. An event
   * that comes after that opens another batch for its window (one more
   * object for it), counted in `stats().late`, which closes `lateMs` after it
   * opened; a batch opened by an event from ahead of the clock closes at most
   * `windowMs + lateMs` after it opened.
   * Default: none (arrival time); `lateMs` defaults to `windowMs`.
   * Memory: a destination may have a batch open per window it receives
   * events for (the current one and those still waiting for late events),
   * all within `maxBufferedBytes`.
   */
  time?: TimeOption;
  /** Time source for windows, key timestamps and the window timer (tests inject one). Default: the system clock. Memory: none. */
  clock?: Clock;
}

/** Options after validation: every default filled in, frozen. */
export interface ResolvedOptions {
  readonly bucket: string | undefined;
  /** Normalised static prefix (`''` when `prefixTemplate` is set). */
  readonly prefix: string;
  readonly prefixTemplate: PrefixTemplate | null;
  readonly deadLetterPrefix: string;
  readonly s3: S3ClientConfig | undefined;
  readonly client: S3Client | undefined;
  readonly acl: ObjectCannedACL | undefined;
  /** What every object carries besides its bytes (ACL, encryption, storage class, tags, headers), for PutObject and CreateMultipartUpload. */
  readonly objectParams: Readonly<ObjectParams>;
  readonly input: 'records' | 'lines';
  readonly keepChunks: boolean;
  readonly windowMs: number;
  readonly partSize: number;
  readonly queueSize: number;
  readonly maxUploads: number;
  readonly maxBufferedBytes: number;
  readonly maxObjectBytes: number;
  readonly maxLineBytes: number;
  readonly gzipLevel: number;
  readonly parallelGzip: boolean;
  readonly retry: RetryPolicy;
  readonly requestTimeoutMs: number;
  readonly deadLetter: string | undefined;
  readonly sweepOrphans: number | false;
  readonly spool: ResolvedSpool | null;
  /** Event time (the `time` option), or `null`: batches follow arrival. */
  readonly time: ResolvedTime | null;
  /** The part of the prefix before its first placeholder, normalised (where the orphan sweep looks). */
  readonly prefixRoot: string;
  readonly clock: Clock;
}

export const DEFAULTS = Object.freeze({
  prefix: '',
  deadLetterPrefix: '_unrouted/',
  input: 'records' as const,
  windowMs: 60_000,
  partSize: 8 * MiB,
  queueSize: 4,
  maxUploads: 16,
  maxBufferedBytes: 64 * MiB,
  maxObjectBytes: 1 * GiB,
  maxLineBytes: 1 * MiB,
  gzipLevel: 6,
  parallelGzip: true,
  requestTimeoutMs: 120_000,
});

const CANNED_ACLS: readonly string[] = ['private', 'public-read', 'public-read-write', 'authenticated-read', 'aws-exec-read', 'bucket-owner-read', 'bucket-owner-full-control'];

const KNOWN = new Set<string>([
  'bucket', 'prefix', 'deadLetterPrefix', 's3', 'client', 'acl', 'sse', 'sseKmsKeyId', 'sseBucketKey', 'storageClass', 'tags',
  'contentType', 'contentEncoding', 'expectedBucketOwner', 'input', 'keepChunks', 'windowMs', 'partSize', 'queueSize',
  'maxUploads', 'maxBufferedBytes', 'maxObjectBytes', 'maxLineBytes', 'gzipLevel', 'parallelGzip', 'retry', 'requestTimeoutMs',
  'deadLetter', 'sweepOrphans', 'spool', 'time', 'clock',
]);

const MAX_SWEEP_AGE_MS = 365 * 24 * 3_600_000;
/** What the orphan sweep allows for clocks: S3 stamps an upload's start, this host computes the cut-off. */
const SWEEP_CLOCK_MARGIN_MS = 10 * 60_000;

/** Rounds of requests an upload may still need when its batch closes: its parts within the budget, `queueSize` at a time, then the completion. */
function sweepRounds(o: { partSize: number; queueSize: number; maxBufferedBytes: number }): number {
  return Math.ceil((Math.ceil(o.maxBufferedBytes / o.partSize) + 1) / o.queueSize) + 1;
}

/**
 * The youngest a multipart upload of a sink with these settings can be and
 * still be dead for sure: the smallest `sweepOrphans` allowed (the formula is
 * in the option's doc comment).
 */
export function orphanAgeFloor(o: { windowMs: number; partSize: number; queueSize: number; maxBufferedBytes: number; retry: RetryPolicy; requestTimeoutMs: number }): number {
  return o.windowMs + sweepRounds(o) * longestRequestMs(o.retry, o.requestTimeoutMs) + SWEEP_CLOCK_MARGIN_MS;
}

/** Most bytes gzip can make of `n` input bytes (zlib's deflateBound for a gzip wrapper, rounded up). */
export function gzipBound(n: number): number {
  return n + Math.ceil(n / 4096) + Math.ceil(n / 16384) + 64;
}

/** The largest `maxObjectBytes` whose gzip always fits in S3's 10 000 parts of `partSize`. */
export function largestObjectFor(partSize: number): number {
  let n = Math.floor(((S3_MAX_PARTS * partSize - 66) * 16384) / (16384 + 4 + 1));
  while (gzipBound(n) > S3_MAX_PARTS * partSize) n -= 1;
  return n;
}

/** What an input of the library's own passes beside the user's options. */
export interface InputTraits {
  /** It fills `{kafka:...}` prefix placeholders (a Kafka worker). */
  kafkaRecords?: boolean;
}

export function resolveOptions(options: SinkOptions = {}, traits: InputTraits = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new OptionError('options', options, 'an object');
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) {
      const near = [...KNOWN].find((k) => k.toLowerCase() === name.toLowerCase());
      throw new OptionError(name, (options as Record<string, unknown>)[name], near ? `no such option (did you mean ${near}?)` : `no such option; known: ${[...KNOWN].join(', ')}`);
    }
  }
  const o = options;
  const input = o.input ?? DEFAULTS.input;
  if (input !== 'records' && input !== 'lines') throw new OptionError('input', input, `'records' or 'lines'`);
  if (o.keepChunks !== undefined && typeof o.keepChunks !== 'boolean') throw new OptionError('keepChunks', o.keepChunks, 'true or false');
  if (o.keepChunks === true && input !== 'lines') throw new OptionError('keepChunks', o.keepChunks, `false or nothing: it keeps the Buffers of lines mode, and records are not Buffers`);

  if (o.bucket !== undefined) {
    const problem = bucketNameProblem(o.bucket);
    if (problem) throw new OptionError('bucket', o.bucket, `an S3 bucket name (${problem})`);
  } else if (input === 'lines') {
    throw new OptionError('bucket', undefined, 'a bucket name: lines mode has no per-event bucket');
  }

  const rawPrefix = o.prefix ?? DEFAULTS.prefix;
  let prefixTemplate: PrefixTemplate | null = null;
  if (typeof rawPrefix !== 'string') throw new OptionError('prefix', rawPrefix, 'a string');
  try {
    prefixTemplate = compileTemplate(rawPrefix);
  } catch (err) {
    throw new OptionError('prefix', rawPrefix, `a prefix or template: ${(err as Error).message}`);
  }
  if (prefixTemplate !== null && prefixTemplate.meta.length > 0 && !traits.kafkaRecords) {
    throw new OptionError('prefix', rawPrefix, `a prefix or template of JSON fields: {kafka:${prefixTemplate.meta[0]}} is filled only by Kafka workers (consumeKafka, s3-sink kafka)`);
  }
  const prefix = prefixTemplate ? '' : prefixOption('prefix', rawPrefix);
  const deadLetterPrefix = prefixOption('deadLetterPrefix', o.deadLetterPrefix ?? DEFAULTS.deadLetterPrefix);

  if (o.s3 !== undefined && o.client !== undefined) {
    throw new OptionError('client', 'an S3Client', 'either client or s3, not both');
  }
  if (o.s3 !== undefined && (o.s3 === null || typeof o.s3 !== 'object')) throw new OptionError('s3', o.s3, 'an S3ClientConfig object');
  if (o.client !== undefined && (o.client === null || typeof (o.client as { send?: unknown }).send !== 'function')) {
    throw new OptionError('client', o.client, 'an S3Client (an object with send())');
  }

  if (o.acl !== undefined && !CANNED_ACLS.includes(o.acl)) throw new OptionError('acl', o.acl, `a canned ACL: ${CANNED_ACLS.join(', ')}`);
  const params = resolveObjectParams(o);

  const windowMs = intOption('windowMs', o.windowMs, DEFAULTS.windowMs, 1, 24 * 3600 * 1000);
  const partSize = intOption('partSize', o.partSize, DEFAULTS.partSize, S3_MIN_PART_SIZE, S3_MAX_PART_SIZE);
  const queueSize = intOption('queueSize', o.queueSize, DEFAULTS.queueSize, 1, 64);
  const maxUploads = intOption('maxUploads', o.maxUploads, DEFAULTS.maxUploads, 1, 1024);
  const maxBufferedBytes = intOption('maxBufferedBytes', o.maxBufferedBytes, DEFAULTS.maxBufferedBytes, 1 * MiB, 64 * GiB);
  // 2: a line of one byte and its \n. Less, and the error would name maxLineBytes, which the user never set.
  const maxObjectBytes = intOption('maxObjectBytes', o.maxObjectBytes, DEFAULTS.maxObjectBytes, 2, 5 * 1024 * GiB);
  // Unset, it shrinks to fit a small budget or object size rather than refuse them.
  const lineDefault = Math.max(1, Math.min(DEFAULTS.maxLineBytes, Math.floor(maxBufferedBytes / 4), maxObjectBytes - 1));
  const maxLineBytes = intOption('maxLineBytes', o.maxLineBytes, lineDefault, 1, 256 * MiB);
  const gzipLevel = intOption('gzipLevel', o.gzipLevel, DEFAULTS.gzipLevel, 0, 9);
  if (o.parallelGzip !== undefined && typeof o.parallelGzip !== 'boolean') throw new OptionError('parallelGzip', o.parallelGzip, 'true or false');
  const retry = resolveRetry(o.retry);
  const requestTimeoutMs = intOption('requestTimeoutMs', o.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 100, 3_600_000);
  if (o.deadLetter !== undefined && (typeof o.deadLetter !== 'string' || o.deadLetter === '')) throw new OptionError('deadLetter', o.deadLetter, 'a directory path');
  if (o.spool !== undefined && o.deadLetter !== undefined) throw new OptionError('deadLetter', o.deadLetter, 'no deadLetter with a spool (it keeps given-up batches in its dead/ directory)');
  // deadLetter is a spool by another name: segments in DIR/.spool (written, not fsynced), dead letters in DIR.
  const spool = o.deadLetter === undefined ? resolveSpool(o.spool) : Object.freeze({ dir: join(o.deadLetter, '.spool'), deadDir: o.deadLetter, fsync: 'never' as const, fsyncIntervalMs: 200, maxBytes: 8 * GiB });
  const sweepOrphans = o.sweepOrphans === undefined || o.sweepOrphans === false ? false : intOption('sweepOrphans', o.sweepOrphans, 0, 1, MAX_SWEEP_AGE_MS);
  if (sweepOrphans !== false) {
    if (o.bucket === undefined) throw new OptionError('sweepOrphans', o.sweepOrphans, 'a default bucket to sweep (the bucket option)');
    const floor = orphanAgeFloor({ windowMs, partSize, queueSize, maxBufferedBytes, retry, requestTimeoutMs });
    if (sweepOrphans < floor) {
      const request = longestRequestMs(retry, requestTimeoutMs);
      throw new OptionError(
        'sweepOrphans',
        sweepOrphans,
        `at least ${floor} (${Math.ceil(floor / 60_000)}m): an upload of a sink with these settings can be live that long ` +
          `(windowMs ${windowMs} + ${sweepRounds({ partSize, queueSize, maxBufferedBytes })} rounds of requests of up to ${request} ms each, retries included, + 10 min for clocks)`,
      );
    }
  }

  if (maxLineBytes + 1 > maxObjectBytes) {
    throw new OptionError('maxLineBytes', maxLineBytes, `less than maxObjectBytes (${maxObjectBytes}): a line must fit in an object`);
  }
  if (maxLineBytes + 1 > maxBufferedBytes) {
    throw new OptionError('maxLineBytes', maxLineBytes, `less than maxBufferedBytes (${maxBufferedBytes}): a line must fit in the memory budget`);
  }
  // Rolling over at maxObjectBytes is what keeps an object under S3's 10 000 parts.
  if (maxObjectBytes > largestObjectFor(partSize)) {
    throw new OptionError('maxObjectBytes', maxObjectBytes, `at most ${largestObjectFor(partSize)} with partSize ${partSize} (S3 allows ${S3_MAX_PARTS} parts per object)`);
  }

  const time = resolveTime(o.time, windowMs);

  const clock = o.clock ?? systemClock;
  if (typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
    throw new OptionError('clock', clock, 'an object with now(), setTimeout() and clearTimeout()');
  }

  return Object.freeze({
    bucket: o.bucket,
    prefix,
    prefixTemplate,
    deadLetterPrefix,
    s3: o.s3,
    client: o.client,
    acl: o.acl,
    objectParams: params,
    input,
    keepChunks: o.keepChunks ?? false,
    windowMs,
    partSize,
    queueSize,
    maxUploads,
    maxBufferedBytes,
    maxObjectBytes,
    maxLineBytes,
    gzipLevel,
    parallelGzip: o.parallelGzip ?? DEFAULTS.parallelGzip,
    retry,
    requestTimeoutMs,
    deadLetter: o.deadLetter,
    sweepOrphans,
    spool,
    time,
    prefixRoot: normalizePrefix(rawPrefix.split('{')[0] as string),
    clock,
  });
}

/** A header value: printable ASCII, not starting with a space. */
const HEADER_VALUE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

function headerOption(name: string, value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || !HEADER_VALUE.test(value))) throw new OptionError(name, value, 'a header value: 1 to 255 printable ASCII characters');
  return value;
}

/** The object options (encryption, storage class, tags, headers, bucket owner), checked, as the params of every object. */
function resolveObjectParams(o: SinkOptions): Readonly<ObjectParams> {
  const sseKmsKeyId = headerOption('sseKmsKeyId', o.sseKmsKeyId);
  const sse = o.sse ?? (sseKmsKeyId !== undefined ? 'aws:kms' : undefined);
  if (sse !== undefined && !SSE_MODES.includes(sse)) throw new OptionError('sse', sse, `one of ${SSE_MODES.map((m) => `'${m}'`).join(', ')}`);
  if (sseKmsKeyId !== undefined && !sse?.startsWith('aws:kms')) throw new OptionError('sseKmsKeyId', sseKmsKeyId, `no KMS key with sse '${sse}' (a KMS key goes with sse 'aws:kms' or 'aws:kms:dsse')`);
  if (o.sseBucketKey !== undefined) {
    if (typeof o.sseBucketKey !== 'boolean') throw new OptionError('sseBucketKey', o.sseBucketKey, 'true or false');
    if (sse !== 'aws:kms') throw new OptionError('sseBucketKey', o.sseBucketKey, `sse 'aws:kms' (S3 Bucket Keys are for SSE-KMS; sse is ${sse === undefined ? 'not set' : `'${sse}'`})`);
  }
  if (o.storageClass !== undefined && !STORAGE_CLASSES.includes(o.storageClass)) throw new OptionError('storageClass', o.storageClass, `a storage class: ${STORAGE_CLASSES.join(', ')}`);
  let tags: Record<string, string> | undefined;
  if (o.tags !== undefined) {
    if (o.tags === null || typeof o.tags !== 'object' || Array.isArray(o.tags)) throw new OptionError('tags', o.tags, 'an object of tag keys and values, like { team: \'logs\' }');
    const entries = Object.entries(o.tags as Record<string, unknown>);
    if (entries.length > MAX_TAGS) throw new OptionError('tags', o.tags, `at most ${MAX_TAGS} tags (S3's limit per object); got ${entries.length}`);
    for (const [key, value] of entries) {
      const problem = tagProblem(key, value);
      if (problem !== null) throw new OptionError('tags', typeof value === 'string' ? `${key}=${value}` : value, `a tag: ${problem}`);
    }
    tags = Object.freeze({ ...(o.tags as Record<string, string>) });
  }
  if (o.expectedBucketOwner !== undefined && (typeof o.expectedBucketOwner !== 'string' || !/^\d{12}$/.test(o.expectedBucketOwner))) {
    throw new OptionError('expectedBucketOwner', o.expectedBucketOwner, 'a 12-digit AWS account id');
  }
  return objectParams({
    acl: o.acl,
    sse,
    sseKmsKeyId,
    sseBucketKey: o.sseBucketKey,
    storageClass: o.storageClass,
    tags,
    contentType: headerOption('contentType', o.contentType) ?? 'application/gzip',
    contentEncoding: headerOption('contentEncoding', o.contentEncoding),
    expectedBucketOwner: o.expectedBucketOwner,
  });
}

const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'interval', 'never'];

function resolveSpool(value: unknown): ResolvedSpool | null {
  if (value === undefined) return null;
  if (value === null || typeof value !== 'object') throw new OptionError('spool', value, 'an object { dir, fsync?, fsyncIntervalMs?, maxBytes? }');
  const o = value as Partial<SpoolOptions>;
  for (const name of Object.keys(o)) {
    if (!['dir', 'fsync', 'fsyncIntervalMs', 'maxBytes'].includes(name)) throw new OptionError(`spool.${name}`, (o as Record<string, unknown>)[name], 'no such field; spool has dir, fsync, fsyncIntervalMs and maxBytes');
  }
  if (typeof o.dir !== 'string' || o.dir === '') throw new OptionError('spool.dir', o.dir, 'a directory path');
  const fsync = o.fsync ?? 'interval';
  if (!FSYNC_POLICIES.includes(fsync)) throw new OptionError('spool.fsync', fsync, `one of ${FSYNC_POLICIES.map((p) => `'${p}'`).join(', ')}`);
  return Object.freeze({
    dir: o.dir,
    deadDir: join(o.dir, 'dead'),
    fsync,
    fsyncIntervalMs: intOption('spool.fsyncIntervalMs', o.fsyncIntervalMs, 200, 1, 60_000),
    maxBytes: intOption('spool.maxBytes', o.maxBytes, 8 * GiB, 1 * MiB, 2 ** 50),
  });
}

/** Longest `time.lateMs`: a day, as the longest window. */
const MAX_LATE_MS = 24 * 3600 * 1000;

function resolveTime(value: unknown, windowMs: number): ResolvedTime | null {
  if (value === undefined) return null;
  if (typeof value === 'function') return Object.freeze({ field: null, get: value as TimeOf, lateMs: windowMs });
  if (value === null || typeof value !== 'object') throw new OptionError('time', value, "{ field: 'ts' }, { get: (payload) => time } or a function of the payload");
  const o = value as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (name !== 'field' && name !== 'get' && name !== 'lateMs') throw new OptionError(`time.${name}`, o[name], 'no such field; time has field (or get) and lateMs');
  }
  if ((o.field === undefined) === (o.get === undefined)) throw new OptionError('time', value, "one of field (a field of the event's JSON) and get (a function of its payload)");
  if (o.field !== undefined && (typeof o.field !== 'string' || !FIELD_PATH.test(o.field))) {
    throw new OptionError('time.field', o.field, 'a field name or dotted path, like ts, @timestamp or event.time');
  }
  if (o.get !== undefined && typeof o.get !== 'function') throw new OptionError('time.get', o.get, 'a function of the payload giving its time');
  const lateMs = intOption('time.lateMs', o.lateMs, windowMs, 0, MAX_LATE_MS);
  return Object.freeze({ field: o.field === undefined ? null : Object.freeze((o.field as string).split('.')), get: (o.get as TimeOf | undefined) ?? null, lateMs });
}

function resolveRetry(value: unknown): RetryPolicy {
  if (value === undefined) return DEFAULT_RETRY;
  if (value === null || typeof value !== 'object') throw new OptionError('retry', value, 'an object { attempts?, baseMs?, capMs? }');
  const r = value as Partial<RetryPolicy>;
  for (const name of Object.keys(r)) {
    if (name !== 'attempts' && name !== 'baseMs' && name !== 'capMs') throw new OptionError(`retry.${name}`, (r as Record<string, unknown>)[name], 'no such field; retry has attempts, baseMs and capMs');
  }
  const attempts = intOption('retry.attempts', r.attempts, DEFAULT_RETRY.attempts, 1, 100);
  const baseMs = intOption('retry.baseMs', r.baseMs, DEFAULT_RETRY.baseMs, 1, 60_000);
  const capMs = intOption('retry.capMs', r.capMs, Math.max(baseMs, DEFAULT_RETRY.capMs), baseMs, 3_600_000);
  return Object.freeze({ attempts, baseMs, capMs });
}

/** An integer option from `min` to `max`, or `fallback` when it is not given; throws `OptionError` naming `name`. */
export function intOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(name, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** A usable prefix option, normalised; throws `OptionError` naming `name`. */
function prefixOption(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new OptionError(name, value, 'a string');
  const checked = checkPrefix(value);
  if ('prefix' in checked) return checked.prefix;
  throw new OptionError(name, value, `${PREFIX_RULE} (this one ${checked.problem})`);
}

/** Bucket name prefixes and suffixes AWS reserves (its bucket naming rules): no bucket can be named so. */
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'];

/** Why `name` is not a valid S3 bucket name, or `null` when it is. */
export function bucketNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (name.length < 3 || name.length > 63) return '3 to 63 characters';
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) return 'lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';
  if (name.includes('..')) return 'no two adjacent dots';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'not an IP address';
  const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix !== undefined) return `not starting with ${prefix} (reserved by AWS)`;
  const suffix = RESERVED_SUFFIXES.find((p) => name.endsWith(p));
  if (suffix !== undefined) return `not ending with ${suffix} (reserved by AWS)`;
  return null;
}
