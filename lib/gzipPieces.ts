import zlib from 'node:zlib';

/**
 * One gzip member written in pieces that compress apart (pigz's way): each
 * piece is raw deflate ended by a sync flush (an empty stored block, never a
 * final block), so the pieces concatenate into one deflate stream; a header
 * goes first, and after the last piece, a final empty block and the trailer
 * (CRC-32 and length of all the pieces' bytes). Pieces can compress on
 * several threads at once, or one at a time as a batch grows, and the object
 * is still one member: every gzip reader reads all of it. (Several members
 * would be valid gzip too, but a reader that stops at the first member's end
 * loses the rest without an error: Python's `zlib.decompress(data, 31)` does;
 * see bench/gzip-members.ts.)
 *
 * A piece may be primed with the 32 KiB before it as its dictionary, which
 * wins back what compressing apart costs (measured on log lines in 1 MiB
 * pieces: 1.006× the size of one stream without, 1.0002× with).
 */

/** Deflate's window: more dictionary than this is of no use. */
export const DICTIONARY_BYTES = 32 * 1024;

/** The 10-byte header zlib writes (no name, no time, OS "Unix"; XFL as zlib sets it for the level). */
export function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

/** Options of `zlib.deflateRaw` for one piece (`dictionary`: the bytes before it, at most DICTIONARY_BYTES of them). */
export function pieceOptions(level: number, dictionary?: Buffer, chunkSize?: number): zlib.ZlibOptions {
  const options: zlib.ZlibOptions = { level, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (dictionary !== undefined && dictionary.length > 0) options.dictionary = dictionary;
  if (chunkSize !== undefined) options.chunkSize = chunkSize;
  return options;
}

/** What the trailer needs, kept as pieces are taken (in order). */
export class MemberSum {
  crc = 0;
  length = 0;

  add(raw: Uint8Array): void {
    this.crc = zlib.crc32(raw, this.crc);
    this.length += raw.length;
  }

  /** The final empty block (BFINAL, fixed Huffman: `03 00`), then CRC-32 and the length modulo 2^32, little-endian. */
  end(): Buffer {
    const tail = Buffer.alloc(10);
    tail[0] = 0x03;
    tail[1] = 0x00;
    tail.writeUInt32LE(this.crc >>> 0, 2);
    tail.writeUInt32LE(this.length % 2 ** 32, 6);
    return tail;
  }
}

/**
 * Where the next piece of a batch ends, in bytes from the start of `list`
 * (its pending bytes, `total` of them, in order): after the last line end
 * within the first `size` bytes, else after the first line end past them (a
 * longer line); with `all`, at the end when no line end is left. -1: wait
 * for more bytes. The cuts depend only on the bytes, never on how they came
 * in buffers.
 */
export function pieceEnd(list: readonly Buffer[], total: number, size: number, all: boolean): number {
  if (total >= size) {
    const last = lastIndexIn(list, LF, size - 1);
    if (last !== -1) return last + 1;
    const next = indexIn(list, LF, size);
    if (next !== -1) return next + 1;
  }
  return all ? total : -1;
}

/** Moves the first `n` bytes of `list` into `into` (from its start): `list` is left holding what follows them. */
export function takeFront(list: Buffer[], n: number, into: Buffer): Buffer {
  let at = 0;
  while (at < n) {
    const first = list[0] as Buffer;
    const take = Math.min(first.length, n - at);
    first.copy(into, at, 0, take);
    at += take;
    if (take === first.length) list.shift();
    else list[0] = first.subarray(take);
  }
  return into.subarray(0, n);
}

const LF = 10;

/** The position of the last `byte` at or before `pos` in the bytes of `list`, or -1. */
function lastIndexIn(list: readonly Buffer[], byte: number, pos: number): number {
  let start = 0;
  let i = 0;
  while (i < list.length - 1 && start + (list[i] as Buffer).length <= pos) start += (list[i++] as Buffer).length;
  for (let local = pos - start; i >= 0; i--) {
    const buf = list[i] as Buffer;
    const found = local < 0 ? -1 : buf.lastIndexOf(byte, local);
    if (found !== -1) return start + found;
    if (i > 0) {
      start -= (list[i - 1] as Buffer).length;
      local = (list[i - 1] as Buffer).length - 1;
    }
  }
  return -1;
}

/** The position of the first `byte` at or after `pos` in the bytes of `list`, or -1. */
function indexIn(list: readonly Buffer[], byte: number, pos: number): number {
  let start = 0;
  for (const buf of list) {
    if (start + buf.length > pos) {
      const found = buf.indexOf(byte, Math.max(0, pos - start));
      if (found !== -1) return start + found;
    }
    start += buf.length;
  }
  return -1;
}
