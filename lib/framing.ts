import { isUtf8 } from 'node:buffer';
import { S3SinkError, messageOf } from './errors.js';

/**
 * The body of an object is one event per line, each line ending in `\n`.
 *
 * - A Buffer or string payload is written as it is, byte for byte.
 * - A Buffer or string that contains `\n` or `\r` would break that framing
 *   (Hadoop's and Athena's line readers end a line at either), so it is written
 *   as a JSON string literal instead: one line, and `JSON.parse(line)` gives the
 *   original text back (for a Buffer, its exact bytes once encoded as UTF-8).
 * - A Buffer with a line break that is not valid UTF-8 has no such form: as a
 *   JSON string its invalid bytes would become U+FFFD. It is refused
 *   (`PayloadError`) rather than written changed.
 * - Anything else is written as `JSON.stringify(payload)`, which never contains
 *   a raw line break.
 */

export type Line = string | Buffer;

/** A payload that has no line form (BigInt, circular, undefined, a function). */
export class PayloadError extends S3SinkError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('ERR_S3SINK_PAYLOAD', reason, options);
  }
}

const LF = 10;
const CR = 13;

export function hasLineBreak(bytes: Uint8Array): boolean {
  return bytes.indexOf(LF) !== -1 || bytes.indexOf(CR) !== -1;
}

/** The line an event's payload is written as (without its `\n`). Throws `PayloadError`. */
export function encodeLine(payload: unknown): Line {
  if (typeof payload === 'string') {
    return payload.includes('\n') || payload.includes('\r') ? JSON.stringify(payload) : payload;
  }
  if (payload instanceof Uint8Array) {
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (!hasLineBreak(bytes)) return bytes;
    if (!isUtf8(bytes)) {
      const at = bytes.findIndex((byte) => byte === LF || byte === CR);
      throw new PayloadError(
        `payload holds a line break (${bytes[at] === CR ? '\\r' : '\\n'} at byte ${at}) and is not valid UTF-8: no one-line form keeps its bytes (as a JSON string, its invalid bytes would become U+FFFD)`,
      );
    }
    return JSON.stringify(bytes.toString('utf8'));
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    throw new PayloadError(`payload cannot be written as JSON: ${messageOf(err)}`, { cause: err });
  }
  if (json === undefined) throw new PayloadError(`payload of type ${typeof payload} has no JSON form`);
  return json;
}

/** Bytes a line takes in the body, its `\n` included. */
export function lineBytes(line: Line): number {
  return (typeof line === 'string' ? Buffer.byteLength(line) : line.length) + 1;
}

/** The lines as one buffer, each followed by `\n`. `bytes` is the sum of `lineBytes`. */
export function joinLines(lines: readonly Line[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const line of lines) {
    at += typeof line === 'string' ? out.write(line, at) : line.copy(out, at);
    out[at++] = LF;
  }
  if (at !== bytes) throw new Error(`joinLines: lines took ${at} bytes, expected ${bytes}`);
  return out;
}
