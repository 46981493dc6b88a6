import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Acks, Batch } from './batch.js';
import { DeadLetterDir, type DeadLetter } from './deadLetter.js';
import { S3SinkError, messageOf } from './errors.js';
import { DATA, encodeHeader, encodeRecord, END, recordHead, SegmentReader, UPLOAD, wholeLines } from './segment.js';

/**
 * The durable spool (`spool` option): a directory holding one segment file
 * per batch not yet in S3 (see segment.ts for the format).
 *
 * - Every piece of a batch is appended to its segment before it goes on to
 *   be compressed; the batch's end goes on only once its segment is fsynced
 *   (unless `fsync: 'never'`), so an object in S3 never holds a line its
 *   segment lacks, and a segment re-delivered after a crash rewrites the same
 *   key with the same bytes.
 * - `'durable'` acks: after the fsync that covers them (`'always'`: each
 *   write; `'interval'`: a group commit every `fsyncIntervalMs`), or after
 *   the write with `'never'` (a process crash cannot lose them, power loss can).
 * - A segment is deleted once its object is complete, or moved to `dead/`
 *   (as the .gz object, with a sidecar) when its upload is given up on.
 * - One process per directory: a lock file holds the owner's pid.
 * - A full disk (ENOSPC) is backpressure: the write waits and is tried again
 *   at the same offset, with a warning, until room returns.
 */

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface SpoolOptions {
  /** The directory (created if missing). One sink process per directory. */
  dir: string;
  /**
   * When a write is made durable: `'always'` (fsync after each write: survives
   * power loss), `'interval'` (group commit every `fsyncIntervalMs`, the
   * default: survives a process crash at once, power loss after the next
   * commit), `'never'` (survives a process crash, not power loss).
   */
  fsync?: FsyncPolicy;
  /** With `'interval'`: ms between group commits. Default: 200. */
  fsyncIntervalMs?: number;
  /** Bytes of segments the spool may hold; past it, writes wait (backpressure). Default: 8 GiB. */
  maxBytes?: number;
}

export interface ResolvedSpool {
  readonly dir: string;
  /** Where given-up batches go: `dir/dead`, or the `deadLetter` directory. */
  readonly deadDir: string;
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
  readonly maxBytes: number;
}

/** Another live process holds the spool directory. */
export class SpoolLockedError extends S3SinkError {
  readonly dir: string;
  readonly pid: number;
  constructor(dir: string, pid: number, host: string) {
    super('ERR_S3SINK_SPOOL_LOCKED', `spool ${dir} is in use by process ${pid} on ${host}: one sink per spool directory`);
    this.dir = dir;
    this.pid = pid;
  }
}

/** The spool could not write or read its files (other than a full disk, which is waited out). */
export class SpoolError extends S3SinkError {
  constructor(message: string, cause: unknown) {
    super('ERR_S3SINK_SPOOL', cause == null ? message : `${message}: ${messageOf(cause)}`, cause == null ? undefined : { cause });
  }
}

export interface SpoolHooks {
  /** `events` written to the spool (they survive a process crash from now on). */
  written(events: number): void;
  /** `events` now durable per the fsync policy, with the acks of those that had one. */
  durable(acks: unknown[], events: number): void;
  warn(code: string, message: string, once?: boolean): void;
}

/** At most this many segment files are kept open at once; beyond it a segment's file is closed after each write. */
const OPEN_FILES = 256;
/** How long a write that found the disk full waits before it is tried again (or less, when a segment is deleted). */
const FULL_RETRY_MS = 1_000;
/** Locks taken by this process (by real path: a symlink is the same directory): a second sink on the same directory in one process is refused too. */
const HELD = new Set<string>();

interface Segment {
  readonly key: string;
  readonly path: string;
  file: FileHandle | null;
  /** Bytes written (the next record's offset). */
  size: number;
  /** Its writes, one after another. */
  chain: Promise<void>;
  /** Written since the last fsync. */
  dirty: boolean;
  /** Acks written, waiting for the fsync that makes them durable. */
  pending: unknown[];
  /** Events written, waiting for it. */
  pendingEvents: number;
  /** Its directory entry has been fsynced (a new file's name is not durable until then). */
  named: boolean;
  /** Its batch's end writes an `END` record (see `Batch.sealed`). */
  readonly sealed: boolean;
}

/** The file name of a batch's segment: from bucket and key (unique, and the same on every run). */
export function segmentName(bucket: string, key: string): string {
  return `${createHash('sha256').update(`${bucket}\u0000${key}`).digest('hex').slice(0, 40)}.seg`;
}

export class Spool {
  readonly options: ResolvedSpool;
  readonly dir: string;
  /** Where given-up batches go (`<bucket>/<key>` and a `.json` sidecar). */
  readonly deadDir: string;
  /** Segment files an earlier run left, found at start (full paths). */
  readonly leftovers: readonly string[];
  readonly #hooks: SpoolHooks;
  readonly #dead: DeadLetterDir;
  /** The spool stage, once the chain is built: told when a segment is settled, and asked to deliver one again. */
  stage: { settled(key: string): void; redeliver(batch: Batch, acks: Acks, reason: unknown): void } | null = null;
  readonly #segments = new Map<string, Segment>();
  #openFiles = 0;
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #full = false;
  #roomWaiters: (() => void)[] = [];
  #lockPath: string;
  /** The directory's real path, as HELD knows it. */
  readonly #held: string;
  #closed = false;
  /** Batches being moved to dead/ now. */
  readonly #burying = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  constructor(options: ResolvedSpool, hooks: SpoolHooks) {
    this.options = options;
    this.dir = resolve(options.dir);
    this.deadDir = resolve(options.deadDir);
    this.#hooks = hooks;
    mkdirSync(this.dir, { recursive: true });
    this.#dead = new DeadLetterDir(this.deadDir);
    this.#lockPath = join(this.dir, 'lock');
    this.#held = realpathSync(this.dir);
    this.#lock();
    this.leftovers = readdirSync(this.dir)
      .filter((name) => name.endsWith('.seg'))
      .sort()
      .map((name) => join(this.dir, name));
  }

  /** A write waits for room on a full disk now (`S3SINK_SPOOL_FULL` said, `S3SINK_SPOOL_ROOM` not yet). */
  get diskFull(): boolean {
    return this.#full;
  }

  /** Bytes of this run's segments now on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Segment path of a batch: named from bucket and key (unique, and the same on every run). */
  pathOf(bucket: string, key: string): string {
    return join(this.dir, segmentName(bucket, key));
  }

  /**
   * Appends `data` (framed lines) to the batch's segment, creating it (with
   * its header) at the batch's first piece. Resolves when the bytes are
   * written; `acks` become durable per the fsync policy.
   */
  append(batch: Batch, data: Buffer, acks: Acks, events: number): Promise<void> {
    let seg = this.#segments.get(batch.key);
    // The first piece creates the file, its header record in the same write.
    const header = seg ? null : encodeHeader({ v: 1, bucket: batch.bucket, key: batch.key, openedAt: batch.openedAt, ...(batch.sealed ? { sealed: true as const } : {}) });
    if (!seg) {
      seg = { key: batch.key, path: this.pathOf(batch.bucket, batch.key), file: null, size: 0, chain: Promise.resolve(), dirty: false, pending: [], pendingEvents: 0, named: false, sealed: batch.sealed === true };
      this.#segments.set(batch.key, seg);
    }
    const segment = seg;
    return this.#enqueue(segment, async () => {
      const record = [recordHead(DATA, data), data];
      await this.#write(segment, header ? [header, ...record] : record, header ? 'wx' : 'r+');
      this.#hooks.written(events);
      if (acks !== null) for (const ack of acks) segment.pending.push(ack);
      segment.pendingEvents += events;
      switch (this.options.fsync) {
        case 'always':
          await this.#sync(segment);
          this.#flushAcks(segment);
          break;
        case 'interval':
          this.#schedule();
          break;
        case 'never':
          this.#flushAcks(segment);
          break;
      }
    });
  }

  /** The batch ended: resolves once all of its segment is written and (unless `'never'`) fsynced. */
  end(key: string): Promise<void> {
    const segment = this.#segments.get(key);
    if (!segment) return Promise.resolve();
    return this.#enqueue(segment, async () => {
      if (segment.sealed) await this.#write(segment, [encodeRecord(END, Buffer.alloc(0))]);
      if (this.options.fsync !== 'never') await this.#sync(segment);
      this.#flushAcks(segment);
      await this.#release(segment);
    });
  }

  /**
   * A segment an earlier run left, being delivered again: taken in, so that a
   * multipart upload started for it is noted too (a crash during recovery
   * leaves none behind). Notes wait until `repair` has cut the segment to its
   * whole records and kept the whole lines of a torn last one as a record of
   * their own (appended after a torn tail, a note could never be read).
   * Once the segment has been read, `repair`; if reading it failed, `release`
   * (notes go on without a repair).
   */
  adopt(batch: { bucket: string; key: string }): { repair(validBytes: number, salvaged: Buffer | null): Promise<void>; release(): void } {
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const segment: Segment = { key: batch.key, path: this.pathOf(batch.bucket, batch.key), file: null, size: 0, chain: gate, dirty: false, pending: [], pendingEvents: 0, named: true, sealed: false };
    this.#segments.set(batch.key, segment);
    let repaired: Promise<void> | null = null;
    const repair = async (validBytes: number, salvaged: Buffer | null) => {
      try {
        segment.size = validBytes;
        this.#bytes += validBytes;
        const file = await this.#file(segment, 'r+');
        if ((await file.stat()).size !== validBytes || (salvaged !== null && salvaged.length > 0)) {
          await file.truncate(validBytes);
          if (salvaged !== null && salvaged.length > 0) await this.#write(segment, [recordHead(DATA, salvaged), salvaged]);
          segment.dirty = true;
          await this.#sync(segment);
        }
      } catch (err) {
        this.#hooks.warn('S3SINK_SPOOL_REPAIR_FAILED', `could not cut ${segment.path} to its whole records: ${messageOf(err)}; uploads of it are not noted`);
      } finally {
        open();
      }
    };
    return { repair: (validBytes, salvaged) => (repaired ??= repair(validBytes, salvaged)), release: open };
  }

  /** A multipart upload started for the batch: noted, so a recovery can abort it. Never fails the caller. */
  noteUpload(key: string, uploadId: string): void {
    const segment = this.#segments.get(key);
    if (!segment) return;
    const record = encodeRecord(UPLOAD, Buffer.from(JSON.stringify({ uploadId })));
    this.#enqueue(segment, () => this.#write(segment, [record])).catch(() => {});
  }

  /** The batch's object is complete: its segment goes. Resolves when it is gone. */
  async remove(batch: { bucket: string; key: string }): Promise<void> {
    await this.#forget(batch.key);
    await this.removePath(this.pathOf(batch.bucket, batch.key));
    this.stage?.settled(batch.key);
  }

  /** Deletes a segment file; a failure is said, not thrown (the file is delivered again after a restart, under the same key). */
  async removePath(path: string): Promise<void> {
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') this.#hooks.warn('S3SINK_SPOOL_REMOVE_FAILED', `could not delete delivered segment ${path}: ${err.message}; a restart delivers it again under the same key`);
    });
    this.#wakeRoom();
  }

  /**
   * The batch's upload was given up on: its lines become `dead/<bucket>/<key>`,
   * the same .gz object under the same key, with a JSON sidecar (`s3-sink flush
   * --dead-letters` or `aws s3 cp` puts it where it belonged); then the segment goes.
   */
  bury(batch: { bucket: string; key: string }, letter: Omit<DeadLetter, 'path' | 'compressedBytes' | 'acks'>, gzipLevel: number): Promise<DeadLetter> {
    // close() waits for it: the lock must not go while a batch is half moved to dead/.
    const burying = this.#buryNow(batch, letter, gzipLevel);
    const tracked: Promise<void> = burying.then(
      () => void this.#burying.delete(tracked),
      () => void this.#burying.delete(tracked),
    );
    this.#burying.add(tracked);
    return burying;
  }

  async #buryNow(batch: { bucket: string; key: string }, letter: Omit<DeadLetter, 'path' | 'compressedBytes' | 'acks'>, gzipLevel: number): Promise<DeadLetter> {
    await this.#forget(batch.key);
    const source = this.pathOf(batch.bucket, batch.key);
    const target = this.#dead.pathOf(batch);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.partial`;
    const reader = new SegmentReader(source);
    await reader.open();
    try {
      await pipeline(Readable.from(dataOf(reader)), createGzip({ level: gzipLevel }), createWriteStream(temporary));
    } catch (err) {
      await unlink(temporary).catch(() => {});
      throw err;
    } finally {
      await reader.close();
    }
    const compressedBytes = (await stat(temporary)).size;
    await rename(temporary, target);
    const full: DeadLetter = { ...letter, path: target, compressedBytes };
    await writeFile(`${target}.json`, `${JSON.stringify(full, null, 2)}\n`);
    await this.removePath(source);
    this.stage?.settled(batch.key);
    return full;
  }

  /** Moves a file that cannot be read as a segment to `dead/` under `name`; returns where it went. */
  async moveToDead(path: string, name: string): Promise<string> {
    const target = join(this.deadDir, name);
    await rename(path, target);
    this.#wakeRoom();
    return target;
  }

  /** An upload failed in a way that can pass: the spool stage delivers the batch again from its segment later. */
  redeliver(batch: Batch, acks: Acks, reason: unknown): void {
    this.stage?.redeliver(batch, acks, reason);
  }

  /** This run's state of a segment goes (its file is dealt with by the caller). */
  async #forget(key: string): Promise<void> {
    const segment = this.#segments.get(key);
    if (!segment) return;
    await segment.chain.catch(() => {});
    await this.#release(segment);
    this.#segments.delete(key);
    this.#bytes -= segment.size;
  }

  /**
   * Stops the group-commit timer and takes no more writes; once the writes
   * under way are done (and their acks reported), closes the files and frees
   * the lock. Segment files stay. Idempotent: every call gets the same promise.
   *
   * The lock outlives the last write: a sink started on the directory after
   * it is freed must find every byte an ack was reported for.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wakeRoom();
    const released = [...this.#segments.values()].map((segment) => segment.chain.then(() => this.#release(segment)).catch(() => {}));
    this.#closing = Promise.all([...released, ...this.#burying]).then(() => this.#unlock());
    return this.#closing;
  }

  #enqueue(segment: Segment, step: () => Promise<void>): Promise<void> {
    const next = segment.chain.then(step);
    // The chain goes on after a failure (the caller hears about it through `next`).
    segment.chain = next.catch(() => {});
    return next;
  }

  /** Writes `buffers` at the end of the segment; a full disk is waited out, trying again at the same offset. */
  async #write(segment: Segment, buffers: Buffer[], flags = 'r+'): Promise<void> {
    const length = buffers.reduce((n, b) => n + b.length, 0);
    if (this.#closed) throw new SpoolError(`cannot write spool segment ${segment.path}`, new Error('the spool is closed'));
    for (;;) {
      try {
        const file = await this.#file(segment, flags);
        flags = 'r+';
        let written = 0;
        let parts = buffers;
        while (written < length) {
          const { bytesWritten } = await file.writev(parts, segment.size + written);
          written += bytesWritten;
          parts = remaining(buffers, written);
        }
        segment.size += length;
        segment.dirty = true;
        this.#bytes += length;
        if (this.#full) {
          this.#full = false;
          this.#hooks.warn('S3SINK_SPOOL_ROOM', `spool ${this.dir} has room again: writing goes on`);
        }
        // With 'always' the fsync that follows needs the file; it is closed after that.
        if (this.#openFiles > OPEN_FILES && this.options.fsync !== 'always') await this.#release(segment);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && flags === 'wx') {
          // The directory was removed under us: made again, so that what comes next is kept.
          this.#hooks.warn('S3SINK_SPOOL_DIR_GONE', `spool directory ${this.dir} was removed while in use: created again (segments that were in it are gone)`);
          mkdirSync(this.dir, { recursive: true });
          continue;
        }
        if (code !== 'ENOSPC' && code !== 'EDQUOT') throw new SpoolError(`cannot write spool segment ${segment.path}`, err);
        if (!this.#full) {
          this.#full = true;
          this.#hooks.warn('S3SINK_SPOOL_FULL', `the disk of spool ${this.dir} is full (${code}): writes wait until there is room (nothing is dropped)`);
        }
        await this.#waitForRoom();
        if (this.#closed) throw new SpoolError(`cannot write spool segment ${segment.path}`, err);
      }
    }
  }

  async #file(segment: Segment, flags: string): Promise<FileHandle> {
    if (segment.file) return segment.file;
    segment.file = await open(segment.path, flags);
    this.#openFiles += 1;
    return segment.file;
  }

  async #release(segment: Segment): Promise<void> {
    const file = segment.file;
    if (!file) return;
    segment.file = null;
    this.#openFiles -= 1;
    await file.close();
  }

  async #sync(segment: Segment): Promise<void> {
    // Forgotten meanwhile (delivered, or moved to dead/): the group-commit timer must not open it again.
    if (!segment.dirty || this.#segments.get(segment.key) !== segment) return;
    segment.dirty = false;
    const file = await this.#file(segment, 'r+');
    try {
      await file.datasync();
      if (!segment.named) {
        await this.#syncDirectory();
        segment.named = true;
      }
      // The fsync may have opened the file again: past the limit it is closed again (else every open batch keeps one).
      if (this.#openFiles > OPEN_FILES) await this.#release(segment);
    } catch (err) {
      segment.dirty = true;
      throw new SpoolError(`cannot fsync spool segment ${segment.path}`, err);
    }
  }

  /** fsync of the directory: a new segment's name survives power loss only after it. */
  async #syncDirectory(): Promise<void> {
    const directory = await open(this.dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }

  #flushAcks(segment: Segment): void {
    if (segment.pendingEvents === 0) return;
    const acks = segment.pending;
    const events = segment.pendingEvents;
    segment.pending = [];
    segment.pendingEvents = 0;
    this.#hooks.durable(acks, events);
  }

  /** Group commit: one timer for every dirty segment. */
  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const dirty = [...this.#segments.values()].filter((s) => s.dirty || s.pendingEvents > 0);
      for (const segment of dirty) {
        this.#enqueue(segment, async () => {
          await this.#sync(segment);
          this.#flushAcks(segment);
          if (this.#openFiles > OPEN_FILES) await this.#release(segment);
        }).catch((err: unknown) => this.#hooks.warn('S3SINK_SPOOL_FSYNC_FAILED', messageOf(err)));
      }
    }, this.options.fsyncIntervalMs);
    this.#timer.unref();
  }

  #waitForRoom(): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(wake, FULL_RETRY_MS);
      function wake() {
        clearTimeout(timer);
        done();
      }
      this.#roomWaiters.push(wake);
    });
  }

  #wakeRoom(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Takes the lock file: created whole with `link()` (never seen empty), and
   * taken over from a process that is gone only under a second file,
   * `lock.takeover`, so that two processes starting at once on a spool a
   * crash left locked cannot both take it (the second one finds the first
   * one's fresh lock, alive).
   */
  #lock(): void {
    if (HELD.has(this.#held)) throw new SpoolLockedError(this.dir, process.pid, hostname());
    const mine = `${process.pid} ${hostname()}\n`;
    const guard = join(this.dir, 'lock.takeover');
    for (let attempt = 0; attempt < 250; attempt++) {
      if (createWhole(this.#lockPath, mine)) {
        HELD.add(this.#held);
        return;
      }
      const holder = holderOf(this.#lockPath);
      if (holder.live) throw new SpoolLockedError(this.dir, holder.pid, holder.host);
      if (holder.text === null) continue; // gone meanwhile: try again
      if (!createWhole(guard, mine)) {
        // Another process is taking it over; or one died doing so, and its guard goes.
        const other = holderOf(guard);
        if (!other.live && other.text !== null && readText(guard) === other.text) removeQuietly(guard);
        pause(20);
        continue;
      }
      try {
        // Still the lock judged stale (not one a quicker process has just taken)?
        if (readText(this.#lockPath) === holder.text) {
          removeQuietly(this.#lockPath);
          // Said once the sink exists, so that its 'warning' listener hears it.
          const stale = `spool ${this.dir} was locked by process ${holder.pid || '?'}, which is gone: taking it over`;
          process.nextTick(() => this.#hooks.warn('S3SINK_SPOOL_STALE_LOCK', stale));
        }
      } finally {
        removeQuietly(guard);
      }
    }
    throw new SpoolLockedError(this.dir, 0, hostname());
  }

  #unlock(): void {
    if (!HELD.delete(this.#held)) return;
    try {
      unlinkSync(this.#lockPath);
    } catch {
      // already gone
    }
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Creates `path` holding `text`, whole, if it does not exist: `false` if it does. */
function createWhole(path: string, text: string): boolean {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, text);
  try {
    linkSync(temporary, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    removeQuietly(temporary);
  }
}

/** Who holds a lock file: `live` when its process runs (on this host; one on another host counts as live). */
function holderOf(path: string): { text: string | null; pid: number; host: string; live: boolean } {
  const text = readText(path);
  const [pidText = '', host = ''] = (text ?? '').trim().split(' ');
  const pid = Number(pidText);
  if (text === null || !Number.isInteger(pid) || pid <= 0) return { text, pid: 0, host, live: false };
  if (host !== hostname()) return { text, pid, host, live: true };
  // Our own pid in it is stale (a restarted container's process 1: this process did not write it).
  return { text, pid, host, live: pid !== process.pid && alive(pid) };
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

/** A short synchronous wait (taking the lock happens once, at start). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `buffers` without their first `skip` bytes. */
function remaining(buffers: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    out.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return out;
}

/** The framed lines of a segment, in order (with the whole lines of a torn last record). */
async function* dataOf(reader: SegmentReader): AsyncGenerator<Buffer> {
  for (let record = await reader.next(); record !== null; record = await reader.next()) if (record.type === DATA) yield record.payload;
  if (reader.tail.kind === 'torn') {
    const kept = wholeLines(reader.tail.present);
    if (kept.length > 0) yield kept;
  }
}
