import { createHash, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { SinkRecord } from '../batch.js';
import { checkBucket } from '../cli/check.js';
import { S3SinkError, messageOf } from '../errors.js';
import { LineSplitter } from '../lines.js';
import { PROMETHEUS_CONTENT_TYPE, prometheusText } from '../metrics.js';
import { s3Sink, type S3Sink } from '../sink.js';
import { bodyEncoding, gunzipBody, parseSendBody, readBody, RequestError, tooLarge } from './body.js';
import { IdempotencyKeys, type Outcome } from './idempotency.js';
import { ServeMetrics } from './metrics.js';
import { isLoopback, resolveServeOptions, type ResolvedServeOptions, type ServeOptions } from './options.js';
import { settleAll, Tracker } from './tracker.js';

/**
 * `s3-sink serve` as a library: an HTTP server in front of one sink.
 *
 * - `POST /v1/send`: a JSON record `{ bucket?, prefix?, payload }` or an
 *   array of them (the shape of a hosted `$.send.s3()`).
 * - `POST /v1/lines`: newline-delimited events (Vector's `http` sink, Fluent
 *   Bit's `http` output); `Content-Encoding: gzip` on either route.
 * - 200 only once every event of the request is `'durable'` (or
 *   `'delivered'`); its body says what was rejected or sent to the
 *   dead-letter prefix. Anything else means: nothing was taken, or send again.
 * - `GET /healthz`, `GET /readyz`, `GET /metrics`.
 */

/** `Retry-After` (seconds) when the server holds `maxPendingBytes` of bodies: they go as fast as the sink takes them. */
export const BUSY_RETRY_AFTER_S = 1;
/** `Retry-After` (seconds) when the spool is full: it drains at the pace of S3. */
export const FULL_RETRY_AFTER_S = 5;
/** The file in the spool directory where answered `Idempotency-Key`s are kept. */
export const IDEMPOTENCY_FILE = 'idempotency-keys.ndjson';

const EMPTY = Buffer.alloc(0);

type Route = '/v1/send' | '/v1/lines' | '/healthz' | '/readyz' | '/metrics';
const ROUTES = new Set<string>(['/v1/send', '/v1/lines', '/healthz', '/readyz', '/metrics']);

export interface Readiness {
  ready: boolean;
  /** `ok`, or what is wrong, for each thing checked. */
  checks: { server: string; s3: string; spool: string };
}

export interface SinkServer extends http.Server {
  /** The sink behind it: its events (`'object'`, `'warning'`, ...) and `stats()`. */
  readonly sink: S3Sink;
  /** The request listener, to mount in a server of your own (whose timeouts then apply instead of `readTimeoutMs`). */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  /** What `/readyz` says. */
  readiness(): Promise<Readiness>;
  /**
   * Stops taking requests (new ones get 503, listening stops), waits for the
   * answers of those under way, then closes the sink: every event is in S3
   * (or in the dead-letter area) when it resolves. Idempotent.
   */
  shutdown(): Promise<void>;
}

/** An HTTP server that takes events for one sink and answers once they are safe; call `listen()` on it. */
export function createServer(options: ServeOptions): SinkServer {
  const resolved = resolveServeOptions(options);
  const service = new Service(resolved);
  const server = http.createServer(
    {
      requestTimeout: resolved.readTimeoutMs,
      headersTimeout: Math.min(resolved.readTimeoutMs, 60_000),
      // How often the timeouts above are checked: often enough that a short readTimeoutMs holds.
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(resolved.readTimeoutMs / 4))),
    },
    service.handle,
  ) as http.Server & { sink: S3Sink; handle: typeof service.handle; readiness: () => Promise<Readiness>; shutdown: () => Promise<void> };
  service.server = server;
  server.on('listening', () => {
    const address = server.address();
    if (resolved.token === null && address !== null && typeof address === 'object' && !isLoopback(address.address)) {
      server.close();
      server.emit('error', insecure(address.address));
    }
  });
  server.sink = service.sink;
  server.handle = service.handle;
  server.readiness = () => service.readiness();
  server.shutdown = () => service.shutdown();
  return server;
}

function insecure(address: string): S3SinkError {
  return new S3SinkError('ERR_S3SINK_INSECURE', `refusing to take events on ${address} without a token: give a token (--token-file FILE), or listen on a loopback address such as 127.0.0.1`);
}

class Service {
  readonly sink: S3Sink;
  server: http.Server | null = null;
  readonly #options: ResolvedServeOptions;
  readonly #token: Buffer | null;
  readonly #metrics = new ServeMetrics();
  readonly #keys: IdempotencyKeys;
  /** Bytes of bodies held that the sink has not taken. */
  #pendingBytes = 0;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Requests write their events one after another, each whole: a request's events stay together. */
  #writing: Promise<void> = Promise.resolve();
  #closing = false;
  #shutdown: Promise<void> | null = null;
  /** Why the sink stopped, once it has (an error, or its end). */
  #broken: RequestError | null = null;
  readonly #brokenPromise: Promise<never>;
  #s3: string;

  constructor(options: ResolvedServeOptions) {
    this.#options = options;
    this.#token = options.token === null ? null : digest(options.token);
    this.sink = s3Sink(options.sink);
    const ctx = this.sink.context;
    this.#keys = new IdempotencyKeys({
      ttlMs: options.idempotencyTtlMs,
      maxKeys: options.idempotencyMaxKeys,
      file: ctx.spool === null ? null : join(ctx.spool.dir, IDEMPOTENCY_FILE),
      now: () => ctx.options.clock.now(),
      warn: (message) => ctx.warn('S3SINK_IDEMPOTENCY_FILE', message),
    });
    let breakAll: (err: RequestError) => void = () => {};
    this.#brokenPromise = new Promise<never>((_, reject) => (breakAll = reject));
    this.#brokenPromise.catch(() => {});
    const stop = (err: RequestError) => {
      if (this.#broken !== null) return;
      this.#broken = err;
      breakAll(err);
    };
    this.sink.on('error', (err) => stop(new RequestError(503, 'ERR_S3SINK_FAILED', `the sink failed: ${messageOf(err)}`, { cause: err })));
    this.sink.on('close', () => stop(new RequestError(503, 'ERR_S3SINK_CLOSED', 'the server is shutting down')));
    const durable = options.ack === 'durable';
    if (durable) this.sink.on('durable', settleAll);
    else this.sink.on('delivered', ({ acks }) => settleAll(acks));
    this.sink.on('rejected', ({ ack, code, reason, head }) => {
      if (!(ack instanceof Tracker)) return;
      ack.rejected += 1;
      ack.note({ code, reason, head });
      ack.settle();
    });
    this.sink.on('unrouted', ({ ack, reason, prefix }) => {
      if (!(ack instanceof Tracker)) return;
      ack.unrouted += 1;
      ack.note({ code: 'S3SINK_UNROUTED', reason, to: prefix });
    });
    if (!durable) {
      this.sink.on('dead-letter', ({ acks, path, code, error }) => {
        for (const ack of acks ?? []) {
          if (!(ack instanceof Tracker)) continue;
          if (path === null) ack.lost += 1;
          else ack.deadLettered += 1;
          ack.note({ code: 'S3SINK_DEAD_LETTER', reason: `${code}: ${error}`, to: path });
          ack.settle();
        }
      });
    }
    // S3 answered: the check below, or any object written since.
    this.#s3 = options.checkBucket && options.sink.bucket !== undefined ? 'not checked yet' : 'ok';
    this.sink.on('object', () => (this.#s3 = 'ok'));
    if (this.#s3 !== 'ok') {
      const bucket = options.sink.bucket as string;
      checkBucket(ctx.client, bucket, 'S3', ctx.options.objectParams.ExpectedBucketOwner).then(
        (result) => {
          if (this.#s3 !== 'ok') this.#s3 = result === null || !result.fatal ? 'ok' : result.problem;
        },
        (err: unknown) => (this.#s3 = messageOf(err)),
      );
    }
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const path = pathOf(req);
    const route = ROUTES.has(path) ? path : 'other';
    req.on('error', () => {}); // a client that goes away: the read fails, and the request with it
    res.on('error', () => {});
    res.on('finish', () => this.#metrics.observe(route, res.statusCode, (performance.now() - started) / 1000));
    const answered = this.#route(path as Route, req, res).catch((err: unknown) => {
      try {
        this.#fail(req, res, err);
      } catch {
        res.destroy();
      }
    });
    this.#inFlight.add(answered);
    void answered.finally(() => this.#inFlight.delete(answered));
  };

  async #route(path: Route, req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (path) {
      case '/healthz':
        onlyGet(req);
        return send(res, 200, { ok: true });
      case '/readyz': {
        onlyGet(req);
        const readiness = await this.readiness();
        return send(res, readiness.ready ? 200 : 503, readiness);
      }
      case '/metrics':
        onlyGet(req);
        this.#authorize(req);
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
        res.end(prometheusText(this.sink.stats()) + this.#metrics.text({ inFlight: this.#inFlight.size, pendingBytes: this.#pendingBytes, ready: (await this.readiness()).ready }));
        return;
      case '/v1/send':
      case '/v1/lines':
        return this.#events(path, req, res);
      default:
        throw new RequestError(404, 'ERR_S3SINK_NOT_FOUND', `no route ${JSON.stringify((path as string).slice(0, 80))}: POST /v1/send or /v1/lines; GET /healthz, /readyz or /metrics`);
    }
  }

  async #events(route: '/v1/send' | '/v1/lines', req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new RequestError(405, 'ERR_S3SINK_METHOD', `${route} takes POST`, { detail: { allow: 'POST' } });
    this.#authorize(req);
    this.#open();
    const encoding = bodyEncoding(req);
    const key = idempotencyKey(req);
    const { maxBodyBytes, maxPendingBytes } = this.#options;
    const length = Number(req.headers['content-length'] ?? Number.NaN);
    if (length > maxBodyBytes) throw tooLarge(maxBodyBytes);
    // Held from here until the sink has taken the events (or the request failed).
    let held = 0;
    const hold = (bytes: number) => {
      if (this.#pendingBytes + bytes > maxPendingBytes && this.#pendingBytes > 0) {
        throw new RequestError(429, 'ERR_S3SINK_BUSY', `the server holds ${this.#pendingBytes} bytes of requests the sink has not taken yet (maxPendingBytes ${maxPendingBytes}): send again later`, { retryAfter: BUSY_RETRY_AFTER_S });
      }
      this.#pendingBytes += bytes;
      held += bytes;
    };
    try {
      if (length > 0) hold(length);
      let body = await readBody(req, maxBodyBytes, (n) => {
        if (!(length > 0)) hold(n);
      });
      this.#metrics.body(route, body.length);
      if (encoding === 'gzip') {
        const raw = body.length;
        body = await gunzipBody(body, maxBodyBytes);
        hold(body.length);
        this.#pendingBytes -= raw;
        held -= raw;
      }
      const records = route === '/v1/send' ? parseSendBody(body) : linesOf(body);
      const hash = key === undefined ? '' : createHash('sha256').update(route).update('\n').update(body).digest('hex');
      // From here only the records hold the body (their lines are views of it), and only until the sink has them.
      body = EMPTY;
      // Answered as the first request with this key was, or taken now.
      if (key !== undefined) {
        const claim = this.#keys.claim(key, hash);
        if (claim.kind === 'mismatch') throw new RequestError(422, 'ERR_S3SINK_IDEMPOTENCY_MISMATCH', `Idempotency-Key ${JSON.stringify(key)} was used for another body: a key names one request`);
        if (claim.kind === 'replay') {
          this.#release(held);
          held = 0;
          const outcome = await claim.outcome;
          this.#metrics.replays += 1;
          return replay(res, outcome);
        }
        let outcome: Outcome = { status: 503, body: '' };
        try {
          const answer = await this.#take(records, () => {
            this.#release(held);
            held = 0;
          });
          outcome = { status: answer.status, body: JSON.stringify(answer.body) };
        } catch (err) {
          outcome = { status: err instanceof RequestError ? err.status : 500, body: '' };
          throw err;
        } finally {
          claim.finish(outcome);
        }
        return replay(res, outcome, false);
      }
      const answer = await this.#take(records, () => {
        this.#release(held);
        held = 0;
      });
      return send(res, answer.status, answer.body);
    } finally {
      this.#release(held);
    }
  }

  /** Writes the events into the sink and waits until each has come back; `taken()` once the sink has them all. */
  async #take(records: SinkRecord[], taken: () => void): Promise<{ status: number; body: Record<string, unknown> }> {
    // Said once more just before anything is written: a request refused here has left nothing behind.
    // (A shutdown begun meanwhile is no reason: a request that arrived before it is answered.)
    this.#open(false);
    const tracker = new Tracker(records.length);
    for (const record of records) record.ack = tracker;
    const written = this.#writing.then(() => this.#write(records));
    this.#writing = written.catch(() => {});
    await Promise.race([written, this.#brokenPromise]);
    // The sink has them: what it holds is in its budget; the body need not wait here for the acks (with 'delivered', a window).
    records.length = 0;
    taken();
    await Promise.race([tracker.done, this.#brokenPromise]);
    // Waiting for delivery, events given up on with nowhere to keep them are lost: the client must send them again.
    return { status: tracker.lost > 0 ? 502 : 200, body: tracker.summary(this.#options.ack) };
  }

  async #write(records: SinkRecord[]): Promise<void> {
    const sink = this.sink;
    for (const record of records) {
      if (this.#broken) throw this.#broken;
      if (!sink.write(record)) await drained(sink);
    }
  }

  /** Refuses a request that cannot be taken now (nothing of it has been). */
  #open(arriving = true): void {
    if (this.#broken) throw this.#broken;
    if (arriving && this.#closing) throw new RequestError(503, 'ERR_S3SINK_CLOSING', 'the server is shutting down: send to another, or again after it restarts', { retryAfter: FULL_RETRY_AFTER_S });
    const full = this.sink.context.full;
    if (full !== null) {
      const why = full === 'disk-full' ? 'the disk of the spool is full' : `the spool holds its maxBytes (${this.sink.context.disk?.max}) of events not yet in S3`;
      throw new RequestError(503, 'ERR_S3SINK_SPOOL_FULL', `${why}: send again later (nothing of this request was taken)`, { retryAfter: FULL_RETRY_AFTER_S, detail: { full } });
    }
  }

  #authorize(req: IncomingMessage): void {
    if (this.#token === null) {
      // Without a token, only connections to a loopback address (also when mounted in a server of the caller's).
      const local = req.socket.localAddress;
      if (local !== undefined && !isLoopback(local)) throw new RequestError(403, 'ERR_S3SINK_INSECURE', insecure(local).message);
      return;
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer +(\S+) *$/i.exec(header);
    // Compared as digests of equal length, in constant time: neither the token nor its length leaks through timing.
    if (match === null || !timingSafeEqual(digest(match[1] as string), this.#token)) {
      throw new RequestError(401, 'ERR_S3SINK_UNAUTHORIZED', header === '' ? 'no Authorization: Bearer token' : 'the bearer token is not the one this server takes', { detail: { authenticate: true } });
    }
  }

  #release(bytes: number): void {
    this.#pendingBytes -= bytes;
  }

  async readiness(): Promise<Readiness> {
    const server = this.#broken?.message ?? (this.#closing ? 'shutting down' : 'ok');
    let spool = 'ok';
    const { spool: disk, full } = this.sink.context;
    if (full !== null) spool = full === 'disk-full' ? 'the disk is full' : 'at its maxBytes';
    else if (disk !== null) spool = await access(disk.dir, constants.W_OK).then(() => 'ok', (err: Error) => `not writable: ${err.message}`);
    return { ready: server === 'ok' && this.#s3 === 'ok' && spool === 'ok', checks: { server, s3: this.#s3, spool } };
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#closing = true;
      if (this.server?.listening) this.server.close();
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      this.server?.closeIdleConnections();
      try {
        await this.sink.close();
      } finally {
        this.#keys.close();
      }
    })();
    return this.#shutdown;
  }

  /** An error answer. The body never reaches a log: only the code and message, which never quote it. */
  #fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const known = err instanceof RequestError ? err : new RequestError(500, 'ERR_S3SINK_INTERNAL', `internal error: ${messageOf(err)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (known.retryAfter !== null) headers['retry-after'] = String(known.retryAfter);
    if (known.detail.allow) headers.allow = String(known.detail.allow);
    if (known.detail.authenticate) headers['www-authenticate'] = 'Bearer';
    const body: Record<string, unknown> = { error: known.code, message: known.message, ...known.detail };
    delete body.authenticate;
    if (req.complete || req.readableEnded) {
      send(res, known.status, body, headers);
      return;
    }
    // The body was not read (or not all of it). Past the size cap it is not read at all: answer now and close.
    if (known.status === 413) {
      send(res, known.status, body, { ...headers, connection: 'close' });
      req.resume();
      return;
    }
    // Otherwise it is read and dropped first, so the client sees the answer rather than a reset (the read timeout still applies).
    req.resume();
    req.once('end', () => send(res, known.status, body, headers));
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function replay(res: ServerResponse, outcome: Outcome, replayed = true): void {
  if (outcome.body === '') throw new RequestError(outcome.status, 'ERR_S3SINK_RETRY', 'the request sent earlier with this Idempotency-Key was not taken: send again', { retryAfter: BUSY_RETRY_AFTER_S });
  const text = `${outcome.body}\n`;
  res.writeHead(outcome.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(replayed ? { 'idempotent-replayed': 'true' } : {}) });
  res.end(text);
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function onlyGet(req: IncomingMessage): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new RequestError(405, 'ERR_S3SINK_METHOD', `${pathOf(req)} takes GET`, { detail: { allow: 'GET, HEAD' } });
}

function idempotencyKey(req: IncomingMessage): string | undefined {
  const key = req.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new RequestError(400, 'ERR_S3SINK_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1 to 255 printable ASCII characters without spaces');
  }
  return key;
}

/** `POST /v1/lines`: each line an event (`\n` or `\r\n`; empty lines skipped); a last line without `\n` too. */
function linesOf(body: Buffer): SinkRecord[] {
  // No cap here: the body is in memory already (within maxBodyBytes), and a line past maxLineBytes is rejected by the sink, with its ack.
  const splitter = new LineSplitter(body.length + 1);
  const lines = splitter.push(body).lines.concat(splitter.end().lines);
  const records: SinkRecord[] = new Array(lines.length);
  for (let i = 0; i < lines.length; i++) records[i] = { payload: lines[i] };
  return records;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Resolves on `'drain'`; rejects when the stream closes or fails first (a wait on `'drain'` alone would never end). */
function drained(stream: S3Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onClose);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onDrain = () => done();
    const onClose = (err?: unknown) => done(new RequestError(503, 'ERR_S3SINK_FAILED', `the sink stopped: ${err === undefined ? 'closed' : messageOf(err)}`));
    stream.once('drain', onDrain);
    stream.once('close', onClose);
    stream.once('error', onClose);
  });
}
