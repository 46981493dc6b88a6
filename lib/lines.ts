import type { Line } from './framing.js';

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

/**
 * What `pushPacked` returns: the lines `push` would, as `lines` (each one
 * line) followed by `packed`, several more lines in one entry.
 */
export interface Packed extends Split {
  /** Lines that come after `lines`, joined by their `\n`s (without the last), a view of the chunk; `null` for none. */
  packed: Buffer | null;
  /** How many lines `packed` holds. */
  packedLines: number;
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
    let start = this.#endCarriedIn(chunk, out);
    if (start === -1) return out;
    for (let nl = chunk.indexOf(LF, start); nl !== -1; nl = chunk.indexOf(LF, start)) {
      this.#emit(chunk.subarray(start, nl), out);
      start = nl + 1;
    }
    if (start < chunk.length) this.#extend(chunk.subarray(start));
    return out;
  }

  /**
   * The same lines as `push`, with a chunk's regular stretch (its complete
   * lines after a carried one, when none has a `\r`, none is empty and none
   * is longer than `maxLineBytes`: nearly every chunk of log lines) as one
   * entry, `packed`, a view of the chunk: one object for the whole stretch
   * instead of one per line. A stretch that is not regular comes line by
   * line in `lines`, as from `push`. Each line followed by a `\n` gives the
   * same bytes as `packed` followed by one.
   */
  pushPacked(chunk: Buffer): Packed {
    const out: Packed = { lines: [], oversized: [], packed: null, packedLines: 0 };
    let start = this.#endCarriedIn(chunk, out);
    if (start === -1) return out;
    const last = chunk.lastIndexOf(LF);
    if (last >= start) {
      const count = regularLines(chunk, start, last, this.maxLineBytes);
      if (count > 0) {
        out.packed = chunk.subarray(start, last);
        out.packedLines = count;
        start = last + 1;
      } else {
        for (let nl = chunk.indexOf(LF, start); nl !== -1 && nl <= last; nl = chunk.indexOf(LF, start)) {
          this.#emit(chunk.subarray(start, nl), out);
          start = nl + 1;
        }
      }
    }
    if (start < chunk.length) this.#extend(chunk.subarray(start));
    return out;
  }

  /**
   * Ends the line carried from before with `chunk`'s first line break, into
   * `out`: where the chunk's own lines start (0 when nothing was carried), or
   * -1 when all of `chunk` went to the carried line.
   */
  #endCarriedIn(chunk: Buffer, out: Split): number {
    if (this.#carryBytes === 0 && !this.#skipping) return 0;
    const nl = chunk.indexOf(LF);
    if (nl === -1) {
      this.#extend(chunk);
      return -1;
    }
    this.#extend(chunk.subarray(0, nl));
    this.#endCarried(out);
    return nl + 1;
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
    // A copy: the rest of the line comes in a later write, and by then the writer may have filled this chunk again.
    this.#carry.push(Buffer.from(bytes));
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
 * The lines in `chunk[start..last]` (`last` is a `\n`) when the stretch is
 * regular (no `\r`, no empty line, no line longer than `max`), else 0.
 */
export function regularLines(chunk: Buffer, start: number, last: number, max: number): number {
  const cr = chunk.indexOf(CR, start);
  if (cr !== -1 && cr < last) return 0;
  let count = 0;
  for (let from = start; from <= last; ) {
    const nl = chunk.indexOf(LF, from);
    if (nl === from || nl - from > max) return 0;
    count += 1;
    from = nl + 1;
  }
  return count;
}

/** Packed entries (see `pushPacked`) back as one entry per line; other entries as they are. */
export function unpackLines(entries: readonly Line[]): Line[] {
  const out: Line[] = [];
  for (const entry of entries) {
    if (typeof entry === 'string' || entry.indexOf(LF) === -1) {
      out.push(entry);
      continue;
    }
    let from = 0;
    for (let nl = entry.indexOf(LF); nl !== -1; nl = entry.indexOf(LF, from)) {
      out.push(entry.subarray(from, nl));
      from = nl + 1;
    }
    out.push(entry.subarray(from));
  }
  return out;
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
