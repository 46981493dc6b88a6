import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A real HTTP proxy in front of s3rver: the sink's client talks to it as if
 * it were S3. It logs every request (as an S3 operation) and can slow request
 * bodies down or inject faults.
 */

export type Operation =
  | 'PutObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'Other';

export interface Logged {
  operation: Operation;
  method: string;
  url: string;
  status: number;
  /** Request body bytes that reached s3rver. */
  bytes: number;
  /** The request's headers, as the client sent them (lower-case names). */
  headers: http.IncomingHttpHeaders;
}

/** What to do with a request: pass it on, or a fault. */
export type Fault =
  | { kind: 'pass' }
  | { kind: 'status'; status: number; code: string }
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'stall' }
  /** Answered by the proxy itself (a capability s3rver lacks). */
  | { kind: 'respond'; status: number; body?: string }
  /** Held (its body unread) until `fault` settles, then treated as it says. */
  | { kind: 'later'; fault: Promise<Fault> };

export interface ProxyOptions {
  /** Request bodies reach s3rver at most this fast, all requests together. */
  bytesPerSecond?: number;
  /** Chooses a fault per request (default: pass everything). */
  fault?: (operation: Operation, request: http.IncomingMessage) => Fault;
}

export interface Proxy {
  endpoint: string;
  log: Logged[];
  /** Requests whose bodies are being throttled right now. */
  readonly active: number;
  /** An outage: stops listening (new connections are refused) and cuts the open ones, until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export function operationOf(method: string, url: string): Operation {
  const query = new URL(url, 'http://x').searchParams;
  if (method === 'PUT' && query.has('uploadId')) return 'UploadPart';
  if (method === 'PUT' && !query.has('acl')) return 'PutObject';
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && query.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'GET' && query.has('uploads')) return 'ListMultipartUploads';
  return 'Other';
}

class Schedule {
  #next = 0;
  readonly #rate: number;
  constructor(bytesPerSecond: number) {
    this.#rate = bytesPerSecond;
  }
  /** Milliseconds until `bytes` more may pass. */
  delay(bytes: number): number {
    const now = performance.now();
    this.#next = Math.max(this.#next, now) + (bytes / this.#rate) * 1000;
    return this.#next - now;
  }
}

class Throttle extends Transform {
  readonly #schedule: Schedule;
  constructor(schedule: Schedule) {
    super();
    this.#schedule = schedule;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const slice = 16 * 1024;
    const next = (at: number) => {
      if (at >= chunk.length) {
        callback();
        return;
      }
      const part = chunk.subarray(at, at + slice);
      setTimeout(() => {
        this.push(part);
        next(at + slice);
      }, this.#schedule.delay(part.length));
    };
    next(0);
  }
}

export async function startProxy(targetPort: number, options: ProxyOptions = {}): Promise<Proxy> {
  const log: Logged[] = [];
  const schedule = options.bytesPerSecond ? new Schedule(options.bytesPerSecond) : null;
  let active = 0;
  const server = http.createServer((req, res) => {
    const operation = operationOf(req.method ?? 'GET', req.url ?? '/');
    const entry: Logged = { operation, method: req.method ?? '', url: req.url ?? '', status: 0, bytes: 0, headers: { ...req.headers } };
    log.push(entry);
    apply(options.fault?.(operation, req) ?? { kind: 'pass' });
    function apply(fault: Fault): void {
      if (fault.kind === 'later') {
        req.pause();
        fault.fault.then(apply, () => req.socket.destroy());
        return;
      }
      if (fault.kind === 'status') {
        req.resume();
        entry.status = fault.status;
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message></Error>`);
        return;
      }
      if (fault.kind === 'respond') {
        req.resume();
        entry.status = fault.status;
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(fault.body ?? '');
        return;
      }
      if (fault.kind === 'stall') {
        req.resume();
        return; // never answers; the client's timeout or abort ends it
      }
      const upstream = http.request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          entry.status = answer.statusCode ?? 0;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      res.on('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      let body: NodeJS.ReadableStream = req;
      if (schedule) {
        active += 1;
        const throttle = new Throttle(schedule);
        throttle.on('end', () => (active -= 1));
        body = req.pipe(throttle);
      }
      body.on('data', (chunk: Buffer) => {
        entry.bytes += chunk.length;
        if (fault.kind === 'reset' && entry.bytes >= fault.afterBytes) {
          req.socket.destroy();
          upstream.destroy();
        }
      });
      body.pipe(upstream);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    get active() {
      return active;
    },
    async down() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
    async up() {
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    async close() {
      if (!server.listening) return;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
