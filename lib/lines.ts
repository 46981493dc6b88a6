/**
 * Splits a byte stream into lines. Bytes are kept as they are (invalid UTF-8
 * and NUL bytes included); a line ends at `\n`, and a `\r` just before it is
 * dropped (CRLF input). Empty lines are not events and are skipped.
 *
 * The buffer for a partial line is capped at `maxLineBytes`: a longer line is
 * not returned but reported as `Oversized` (its length and first bytes), and the
 * lines after it come through untouched.
 */

export interface Oversized {
  /** Bytes of the line without its line break (at least `maxLineBytes + 1`). */
  bytes: number;
  /** Its first bytes, for the report. */
  head: Buffer;
}

export interface Split {
  lines: Buffer[];
  oversized: Oversized[];
}

const LF = 10;
const CR = 13;
export const HEAD_BYTES = 64;

export class LineSplitter {
  readonly maxLineBytes: number;
  #carry: Buffer[] = [];
  #carryBytes = 0;
  /** While a too-long line is being skipped: its length so far and first bytes. */
  #skipping: Oversized | null = null;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** The complete lines in `chunk` (with what was carried before it). */
  push(chunk: Buffer): Split {
    const out: Split = { lines: [], oversized: [] };
    let start = 0;
    if (this.#carryBytes > 0 || this.#skipping) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) {
        this.#extend(chunk);
        return out;
      }
      this.#extend(chunk.subarray(0, nl));
      this.#endCarried(out);
      start = nl + 1;
    }
    for (let nl = chunk.indexOf(LF, start); nl !== -1; nl = chunk.indexOf(LF, start)) {
      this.#emit(chunk.subarray(start, nl), out);
      start = nl + 1;
    }
    if (start < chunk.length) this.#extend(chunk.subarray(start));
    return out;
  }

  /** The last line, when the input did not end with a line break. */
  end(): Split {
    const out: Split = { lines: [], oversized: [] };
    this.#endCarried(out);
    return out;
  }

  /** Bytes held for a partial line. */
  get carriedBytes(): number {
    return this.#carryBytes;
  }

  #extend(bytes: Buffer): void {
    if (this.#skipping) {
      this.#skipping.bytes += bytes.length;
      return;
    }
    if (bytes.length === 0) return;
    this.#carry.push(bytes);
    this.#carryBytes += bytes.length;
    // One byte of slack: the `\r` of a CRLF line of exactly maxLineBytes.
    if (this.#carryBytes > this.maxLineBytes + 1) {
      const all = Buffer.concat(this.#carry, this.#carryBytes);
      this.#skipping = { bytes: all.length, head: Buffer.from(all.subarray(0, HEAD_BYTES)) };
      this.#carry = [];
      this.#carryBytes = 0;
    }
  }

  #endCarried(out: Split): void {
    if (this.#skipping) {
      const skipped = this.#skipping;
      this.#skipping = null;
      out.oversized.push(skipped);
      return;
    }
    if (this.#carryBytes === 0) return;
    const line = this.#carry.length === 1 ? (this.#carry[0] as Buffer) : Buffer.concat(this.#carry, this.#carryBytes);
    this.#carry = [];
    this.#carryBytes = 0;
    this.#emit(line, out);
  }

  #emit(line: Buffer, out: Split): void {
    const bytes = line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
    if (bytes.length === 0) return;
    if (bytes.length > this.maxLineBytes) {
      out.oversized.push({ bytes: bytes.length, head: Buffer.from(bytes.subarray(0, HEAD_BYTES)) });
      return;
    }
    out.lines.push(bytes);
  }
}

/**
 * Counts the events in a byte stream without keeping any of it: the lines
 * `LineSplitter` would return or report as oversized (a line ends at `\n`,
 * a `\r` before it is not part of it, empty lines are not events). For
 * saying how many events were read when some of them have not reached the
 * splitter yet (they wait in stream buffers).
 */
export class LineCounter {
  /** Events in complete lines so far (and the last line, after `end()`). */
  lines = 0;
  /** Bytes of the line under way, and its last byte. */
  #partial = 0;
  #last = -1;

  push(chunk: Uint8Array): void {
    let start = 0;
    for (let nl = chunk.indexOf(LF); nl !== -1; nl = chunk.indexOf(LF, start)) {
      this.#count(this.#partial + nl - start, nl > start ? (chunk[nl - 1] as number) : this.#last);
      this.#partial = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.#partial += chunk.length - start;
      this.#last = chunk[chunk.length - 1] as number;
    }
  }

  /** The input ended: a last line without `\n` is an event too. */
  end(): void {
    this.#count(this.#partial, this.#last);
    this.#partial = 0;
  }

  #count(bytes: number, last: number): void {
    if (bytes > 1 || (bytes === 1 && last !== CR)) this.lines += 1;
  }
}
