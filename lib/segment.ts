import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/**
 * The spool's file format: one segment file per batch, a sequence of records
 *
 *     [type: u8][length: u32 BE][crc32 of payload: u32 BE][crc32 of the 9 bytes before: u32 BE][payload]
 *
 * - `HEADER` (first, once): JSON naming the batch (bucket, key, when it opened);
 * - `DATA`: framed lines of the batch (each ends in `\n`), in order;
 * - `UPLOAD`: JSON `{ uploadId }`, a multipart upload started for it (aborted on recovery);
 * - `END` (empty, last): the batch ended and all of it is here. Written only
 *   for a batch whose header says `sealed`: recovery delivers such a segment
 *   only when it ends in `END` (the Kafka input's batches: what did not end
 *   is read from Kafka again).
 *
 * A record is appended with one positioned write. `kill -9` can leave the
 * last one short (a torn tail); a crc that does not match means the disk
 * lost or changed bytes. The head has a crc of its own, so a damaged length
 * is found as damage, never taken for a record cut short. Pure functions here; the reader reads one record at
 * a time, so a segment of any size is recovered in bounded memory.
 */

export const RECORD_HEADER_BYTES = 13;
export const HEADER = 1;
export const DATA = 2;
export const UPLOAD = 3;
export const END = 4;

/** What a segment's header record says. */
export interface SegmentHeader {
  v: 1;
  bucket: string;
  key: string;
  /** When the batch opened (ms since epoch): the time in its key. */
  openedAt: number;
  /** Delivered on recovery only when the segment ends in an `END` record. */
  sealed?: true;
}

/** The 13 bytes before a record's payload. */
export function recordHead(type: number, payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  head.writeUInt32BE(crc32(payload), 5);
  head.writeUInt32BE(crc32(head.subarray(0, 9)), 9);
  return head;
}

/** A whole record as one buffer (for small records; data records are written as head + payload). */
export function encodeRecord(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([recordHead(type, payload), payload]);
}

export function encodeHeader(header: SegmentHeader): Buffer {
  return encodeRecord(HEADER, Buffer.from(JSON.stringify(header)));
}

/** Why a segment's header is not usable, or the header. */
export function decodeHeader(payload: Buffer): SegmentHeader | string {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'header is not JSON';
  }
  const h = value as Partial<SegmentHeader> | null;
  if (h === null || typeof h !== 'object' || h.v !== 1) return 'header is not version 1';
  if (typeof h.bucket !== 'string' || typeof h.key !== 'string' || typeof h.openedAt !== 'number') return 'header lacks bucket, key or openedAt';
  return h as SegmentHeader;
}

export type Record = { type: number; payload: Buffer };

/** How a segment's readable records end: cleanly, or with bytes that are not a whole, intact record. */
export type Tail =
  | { kind: 'clean' }
  /**
   * The last record is cut short (a crash during its write): `offset` is where
   * it starts, `present` the part of its payload that is there (data records only).
   */
  | { kind: 'torn'; offset: number; bytes: number; present: Buffer }
  /** A whole record whose crc does not match, or a type we do not know: the file was damaged. */
  | { kind: 'corrupt'; offset: number; bytes: number };

/** Reads a segment record by record. */
export class SegmentReader {
  readonly path: string;
  #file: FileHandle | null = null;
  #at = 0;
  #size = 0;
  tail: Tail = { kind: 'clean' };

  constructor(path: string) {
    this.path = path;
  }

  async open(): Promise<void> {
    this.#file = await open(this.path, 'r');
    this.#size = (await this.#file.stat()).size;
  }

  /** Bytes of the file. */
  get size(): number {
    return this.#size;
  }

  /** The next whole, intact record, or `null` at the end (then `tail` says how it ended). */
  async next(): Promise<Record | null> {
    const left = this.#size - this.#at;
    if (left === 0) return null;
    // Not even a record's head: nothing of its payload reached the disk.
    if (left < RECORD_HEADER_BYTES) return this.#torn(Buffer.alloc(0), left);
    const head = await this.#read(this.#at, RECORD_HEADER_BYTES);
    const type = head.readUInt8(0);
    const length = head.readUInt32BE(1);
    if (crc32(head.subarray(0, 9)) !== head.readUInt32BE(9) || (type !== HEADER && type !== DATA && type !== UPLOAD && type !== END)) {
      this.tail = { kind: 'corrupt', offset: this.#at, bytes: left };
      return null;
    }
    if (RECORD_HEADER_BYTES + length > left) {
      return this.#torn(type === DATA ? await this.#read(this.#at + RECORD_HEADER_BYTES, left - RECORD_HEADER_BYTES) : Buffer.alloc(0), left);
    }
    const payload = await this.#read(this.#at + RECORD_HEADER_BYTES, length);
    if (crc32(payload) !== head.readUInt32BE(5)) {
      this.tail = { kind: 'corrupt', offset: this.#at, bytes: left };
      return null;
    }
    this.#at += RECORD_HEADER_BYTES + length;
    return { type, payload };
  }

  async close(): Promise<void> {
    await this.#file?.close();
    this.#file = null;
  }

  /** Bytes of whole, intact records read so far (where a torn or damaged tail begins, once `next` returned `null`). */
  get position(): number {
    return this.#at;
  }

  #torn(present: Buffer, bytes: number): null {
    this.tail = { kind: 'torn', offset: this.#at, bytes, present };
    return null;
  }

  async #read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await (this.#file as FileHandle).read(buffer, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buffer : buffer.subarray(0, done);
  }
}

/**
 * The whole lines in the part of a torn data record that reached the disk:
 * everything up to its last `\n`. A torn record was never fsynced, so none of
 * its events was reported durable; what a crash left of it is still kept.
 */
export function wholeLines(present: Buffer): Buffer {
  const last = present.lastIndexOf(10);
  return last === -1 ? present.subarray(0, 0) : present.subarray(0, last + 1);
}

/** Events (lines) in framed data. */
export function countLines(data: Uint8Array): number {
  let n = 0;
  for (let at = data.indexOf(10); at !== -1; at = data.indexOf(10, at + 1)) n += 1;
  return n;
}
