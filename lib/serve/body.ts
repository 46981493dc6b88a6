import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { S3SinkError } from '../errors.js';
import { toRecord } from '../stages/parse.js';
import type { SinkRecord } from '../batch.js';

const gunzipAsync = promisify(gunzip);

/**
 * A request the server answers with an error status and does not take: its
 * `code` is stable and goes in the JSON body with the message.
 */
export class RequestError extends S3SinkError {
  readonly status: number;
  /** Seconds, for 429 and 503. */
  readonly retryAfter: number | null;
  /** More for the JSON body (the position of a JSON error, the index of a record). */
  readonly detail: Record<string, unknown>;

  constructor(status: number, code: string, message: string, options: { retryAfter?: number; detail?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.retryAfter = options.retryAfter ?? null;
    this.detail = options.detail ?? {};
  }
}

/** The body's encoding: `gzip` or none; anything else is refused (415) before the body is read. */
export function bodyEncoding(req: IncomingMessage): 'gzip' | 'identity' {
  const value = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (value === 'identity' || value === '') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  throw new RequestError(415, 'ERR_S3SINK_ENCODING', `Content-Encoding ${JSON.stringify(value.slice(0, 40))} is not supported: send gzip or no encoding`);
}

/**
 * Reads the whole body, at most `max` bytes; `hold(n)` is asked before `n`
 * more bytes are kept (it throws when the server holds too much). Past `max`,
 * 413. The read timeout is the HTTP server's own (`requestTimeout`).
 */
export function readBody(req: IncomingMessage, max: number, hold: (bytes: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const fail = (err: Error) => {
      req.off('data', onData);
      req.resume(); // what is still coming is read and dropped
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (length + chunk.length > max) {
        fail(tooLarge(max));
        return;
      }
      try {
        hold(chunk.length);
      } catch (err) {
        fail(err as Error);
        return;
      }
      chunks.push(chunk);
      length += chunk.length;
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length)));
    req.once('error', (err) => reject(new RequestError(400, 'ERR_S3SINK_BODY', `the request body could not be read: ${err.message}`, { cause: err })));
    req.once('aborted', () => reject(new RequestError(400, 'ERR_S3SINK_BODY', 'the client went away before the body was complete')));
  });
}

export function tooLarge(max: number): RequestError {
  return new RequestError(413, 'ERR_S3SINK_TOO_LARGE', `the request body is larger than ${max} bytes (the server's maxBodyBytes, --max-body): send smaller batches`, { detail: { maxBodyBytes: max } });
}

/** A gzip body, decompressed on the thread pool, at most `max` bytes of it. */
export async function gunzipBody(body: Buffer, max: number): Promise<Buffer> {
  try {
    return await gunzipAsync(body, { maxOutputLength: max });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(max);
    throw new RequestError(400, 'ERR_S3SINK_BODY', `the gzip body cannot be decompressed: ${(err as Error).message}`, { cause: err });
  }
}

const RECORD_FIELDS = new Set(['bucket', 'prefix', 'payload']);

/**
 * `POST /v1/send`: a JSON record `{ bucket?, prefix?, payload }` or an array
 * of them. Anything else is a 400 naming where it went wrong: the position
 * (and line and column) of a JSON syntax error, or the index and field of a
 * record of the wrong shape. Nothing of such a body is taken.
 */
export function parseSendBody(body: Buffer): SinkRecord[] {
  let value: unknown;
  const text = body.toString('utf8');
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message);
    const position = at ? Number(at[1]) : text.length;
    const before = text.slice(0, position);
    const line = before.split('\n').length;
    const column = position - before.lastIndexOf('\n');
    throw new RequestError(400, 'ERR_S3SINK_BODY', `the body is not JSON: ${message} (line ${line}, column ${column})`, { detail: { position, line, column } });
  }
  const list = Array.isArray(value) ? value : [value];
  const records: SinkRecord[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const where = Array.isArray(value) ? `record [${i}]` : 'the record';
    const item: unknown = list[i];
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw badRecord(where, i, `is ${item === null ? 'null' : Array.isArray(item) ? 'an array' : typeof item}, expected an object { bucket?, prefix?, payload }`);
    }
    for (const field of Object.keys(item)) {
      if (!RECORD_FIELDS.has(field)) throw badRecord(where, i, `has a field ${JSON.stringify(field.slice(0, 40))}: expected only bucket, prefix and payload`, field);
    }
    const record = toRecord(item);
    if (typeof record === 'string') throw badRecord(where, i, record.replace(/^record /, ''), /^record (bucket|prefix) /.exec(record)?.[1] ?? 'payload');
    records[i] = { bucket: record.bucket, prefix: record.prefix, payload: record.payload };
  }
  return records;
}

function badRecord(where: string, index: number, problem: string, field?: string): RequestError {
  return new RequestError(400, 'ERR_S3SINK_BODY', `${where} ${problem}`, { detail: field === undefined ? { index } : { index, field } });
}
