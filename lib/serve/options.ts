import { OptionError } from '../errors.js';
import { intOption, type SinkOptions } from '../options.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Options of `createServer()`: the sink's own options, and how the server
 * takes requests. Validated once, when the server is made; a bad one throws
 * `OptionError` naming it.
 */
export interface ServeOptions {
  /** The sink behind the server (`input` is always records: the server splits lines itself). Give it a `spool` for `ack: 'durable'`. */
  sink: SinkOptions;
  /**
   * When a request is answered 200: once every event of it is `'durable'` in
   * the spool (default; needs `sink.spool`), or `'delivered'` in a completed
   * S3 object (then a request waits up to a window plus the upload: use a
   * short `windowMs`).
   */
  ack?: 'durable' | 'delivered';
  /**
   * The bearer token clients must send (`Authorization: Bearer TOKEN`),
   * compared in constant time. Without one the server answers only
   * connections to a loopback address. Default: none.
   */
  token?: string;
  /** Largest request body, as sent and once decompressed; past it, 413. Default: 10 MiB (Vector's `batch.max_bytes`). Memory: this, per request being read. */
  maxBodyBytes?: number;
  /**
   * Bytes of request bodies held that the sink has not taken yet, all
   * requests together; a request that would pass it gets 429 with
   * `Retry-After`. At least `maxBodyBytes`. Default: 64 MiB. Memory: this.
   */
  maxPendingBytes?: number;
  /** A request's headers and body must arrive within this; a slower sender gets 408 and the connection is closed. Default: 30 s. */
  readTimeoutMs?: number;
  /** How long an `Idempotency-Key` is remembered after its request got 200. Default: 1 h. */
  idempotencyTtlMs?: number;
  /** How many keys are remembered at most (the oldest go first). Default: 100 000. Memory: about 200 bytes each. */
  idempotencyMaxKeys?: number;
  /**
   * Ask S3 for the default bucket at start (GetBucketLocation): `/readyz`
   * answers 200 only once it has answered. `false` when the caller has
   * checked already (the CLI does, and exits when the bucket is missing).
   * Default: true.
   */
  checkBucket?: boolean;
}

export interface ResolvedServeOptions {
  readonly sink: SinkOptions;
  readonly ack: 'durable' | 'delivered';
  readonly token: string | null;
  readonly maxBodyBytes: number;
  readonly maxPendingBytes: number;
  readonly readTimeoutMs: number;
  readonly idempotencyTtlMs: number;
  readonly idempotencyMaxKeys: number;
  readonly checkBucket: boolean;
}

export const SERVE_DEFAULTS = Object.freeze({
  ack: 'durable',
  maxBodyBytes: 10 * MiB,
  maxPendingBytes: 64 * MiB,
  readTimeoutMs: 30_000,
  idempotencyTtlMs: 3_600_000,
  idempotencyMaxKeys: 100_000,
} as const);

/**
 * The spool's group-commit interval behind a server, unless `sink.spool`
 * sets one: every request waits for a commit, so it bounds a client's rate
 * (measured: 5 ms gave 4× the requests of 20 ms; 1 ms was slower again, the
 * disk busy with fsyncs).
 */
export const SERVE_FSYNC_INTERVAL_MS = 5;

const KNOWN = new Set(['sink', 'ack', 'token', 'maxBodyBytes', 'maxPendingBytes', 'readTimeoutMs', 'idempotencyTtlMs', 'idempotencyMaxKeys', 'checkBucket']);

export function resolveServeOptions(options: ServeOptions): ResolvedServeOptions {
  if (options === null || typeof options !== 'object') throw new OptionError('options', options, 'an object');
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new OptionError(name, (options as unknown as Record<string, unknown>)[name], `no such option of createServer; known: ${[...KNOWN].join(', ')}`);
  }
  const sink = options.sink;
  if (sink === null || typeof sink !== 'object') throw new OptionError('sink', sink, 'the sink options, an object');
  if (sink.input !== undefined && sink.input !== 'records') throw new OptionError('sink.input', sink.input, `'records' or nothing (the server splits lines itself)`);
  const ack = options.ack ?? SERVE_DEFAULTS.ack;
  if (ack !== 'durable' && ack !== 'delivered') throw new OptionError('ack', ack, `'durable' or 'delivered'`);
  if (ack === 'durable' && sink.spool === undefined) {
    throw new OptionError('ack', ack, `a sink with a spool (sink.spool: { dir }) to make events durable in, or ack: 'delivered'`);
  }
  const token = options.token ?? null;
  if (token !== null && (typeof token !== 'string' || !/^[\x21-\x7e]{16,4096}$/.test(token))) {
    throw new OptionError('token', token === null ? token : '(hidden)', 'from 16 to 4096 printable ASCII characters without spaces (a bearer token)');
  }
  const maxBodyBytes = intOption('maxBodyBytes', options.maxBodyBytes, SERVE_DEFAULTS.maxBodyBytes, 1, 256 * MiB);
  const maxPendingBytes = intOption('maxPendingBytes', options.maxPendingBytes, Math.max(maxBodyBytes, SERVE_DEFAULTS.maxPendingBytes), maxBodyBytes, 64 * 1024 * MiB);
  // A request waits for the group commit that makes its events durable: the sink's 200 ms would cap a client at 5 requests a second.
  const spool = sink.spool !== undefined && sink.spool !== null && typeof sink.spool === 'object' ? { fsyncIntervalMs: SERVE_FSYNC_INTERVAL_MS, ...sink.spool } : sink.spool;
  return Object.freeze({
    sink: { ...sink, input: 'records' as const, ...(spool === undefined ? {} : { spool }) },
    ack,
    token,
    maxBodyBytes,
    maxPendingBytes,
    readTimeoutMs: intOption('readTimeoutMs', options.readTimeoutMs, SERVE_DEFAULTS.readTimeoutMs, 100, 3_600_000),
    idempotencyTtlMs: intOption('idempotencyTtlMs', options.idempotencyTtlMs, SERVE_DEFAULTS.idempotencyTtlMs, 1_000, 30 * 24 * 3_600_000),
    idempotencyMaxKeys: intOption('idempotencyMaxKeys', options.idempotencyMaxKeys, SERVE_DEFAULTS.idempotencyMaxKeys, 1, 10_000_000),
    checkBucket: options.checkBucket ?? true,
  });
}

/** Whether `host` (an address as `listen` or `server.address()` gives it, or a name) is on loopback only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
