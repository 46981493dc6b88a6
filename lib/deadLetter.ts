import { createReadStream, createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Batch } from './batch.js';
import type { SinkContext } from './context.js';
import { UploadError } from './errors.js';

/**
 * The dead-letter directory (`deadLetter` option). While a batch uploads,
 * its gzip bytes are also written to `DIR/.spool/`; when the object is
 * complete the copy is deleted. When its upload is given up on, the copy
 * becomes `DIR/<bucket>/<key>` (the same .gz object, under the same key)
 * with a JSON sidecar `DIR/<bucket>/<key>.json` naming bucket, key, error and
 * time: nothing is lost, and `aws s3 cp` of the file puts it where it belonged.
 */

/** What a `'dead-letter'` event and the sidecar say. */
export interface DeadLetter {
  bucket: string;
  key: string;
  /** The .gz file on disk; `null` when the sink has no place to keep it (no `spool`, no `deadLetter`): then its events are lost, and `close()` rejects at the end. */
  path: string | null;
  /** The S3 error code that made the sink give up. */
  code: string;
  error: string;
  /** When it was given up on (ISO 8601, UTC). */
  time: string;
  events: number;
  bytes: number;
  compressedBytes: number;
  /** The acks of its events (in the event only, not the sidecar). */
  acks?: unknown[];
}

export class DeadLetterDir {
  readonly root: string;
  readonly #spool: string;

  /** Creates the directory (and, for copies of uploading batches, its `.spool`) now, so a bad path fails at start. */
  constructor(root: string, copies = true) {
    this.root = resolve(root);
    this.#spool = join(this.root, '.spool');
    mkdirSync(copies ? this.#spool : this.root, { recursive: true });
  }

  open(batch: Batch, onError: (err: Error) => void): SpoolFile {
    const name = batch.key.slice(batch.key.lastIndexOf('/') + 1);
    return new SpoolFile(join(this.#spool, name), this.pathOf(batch), onError);
  }

  /** Where a given-up batch lands. Keys never escape the directory. */
  pathOf(batch: { bucket: string; key: string }): string {
    const path = resolve(this.root, batch.bucket, ...batch.key.split('/').filter((s) => s !== '' && s !== '.' && s !== '..'));
    if (!path.startsWith(this.root + sep)) throw new Error(`dead-letter path for ${batch.key} escapes ${this.root}`);
    return path;
  }
}

/**
 * The copy of one batch while it uploads. A disk error (the directory
 * removed, a full disk) never throws: it is kept in `error`, writes after it
 * are dropped, and the caller decides (`commit` rejects with it).
 */
export class SpoolFile {
  readonly #path: string;
  readonly #target: string;
  /** The copy's stream (wait on it with `whenWritable` when `write` returns false). */
  readonly stream: WriteStream;
  /** The first disk error, if any: the copy is incomplete. */
  error: Error | null = null;

  constructor(path: string, target: string, onError: (err: Error) => void) {
    this.#path = path;
    this.#target = target;
    this.stream = createWriteStream(path, { flags: 'wx' });
    this.stream.on('error', (err) => {
      if (this.error) return;
      this.error = err;
      onError(err);
    });
  }

  /** `false` when the caller should wait for the stream to drain (or fail). */
  write(data: Buffer): boolean {
    if (this.error || this.stream.destroyed) return true;
    return this.stream.write(data);
  }

  /** The object reached S3: the copy goes. Never rejects. */
  async discard(): Promise<void> {
    await this.#close().catch(() => {});
    await unlink(this.#path).catch(() => {});
  }

  /** The upload was given up on: the copy becomes the dead letter, with its sidecar. */
  async commit(letter: Omit<DeadLetter, 'path' | 'acks'>): Promise<DeadLetter> {
    await this.#close();
    if (this.error) throw this.error;
    await mkdir(dirname(this.#target), { recursive: true });
    await rename(this.#path, this.#target);
    const full: DeadLetter = { ...letter, path: this.#target };
    await writeFile(`${this.#target}.json`, `${JSON.stringify(full, null, 2)}\n`);
    return full;
  }

  /** Left where it is (a destroyed sink): the partial copy stays in the spool. */
  abandon(): void {
    if (!this.stream.destroyed) this.stream.end();
  }

  #close(): Promise<void> {
    return new Promise((done) => {
      if (this.stream.closed || this.stream.destroyed) {
        done();
        return;
      }
      this.stream.once('close', () => done());
      this.stream.end();
    });
  }
}

/** What `redeliverDeadLetters` did. */
export interface Redelivery {
  delivered: DeadLetter[];
  failed: { letter: DeadLetter; error: UploadError }[];
}

/**
 * Puts every dead letter under `root` (`<bucket>/<key>`, with its `.json`
 * sidecar: a `deadLetter` directory, or a spool's `dead/`) back where it
 * belonged, with one PutObject of the .gz as it is, and deletes it once it is
 * in S3. Keys are the same, so doing it twice writes the same objects again.
 */
export async function redeliverDeadLetters(ctx: SinkContext, root: string): Promise<Redelivery> {
  const result: Redelivery = { delivered: [], failed: [] };
  const names = (await readdir(root, { recursive: true })).filter((name) => name.endsWith('.gz.json') && !name.split(sep).includes('.spool')).sort();
  for (const name of names) {
    const sidecar = join(root, name);
    const letter = JSON.parse(await readFile(sidecar, 'utf8')) as DeadLetter;
    const path = sidecar.slice(0, -'.json'.length);
    try {
      const { size } = await stat(path);
      await ctx.transport.send(
        new PutObjectCommand({ Bucket: letter.bucket, Key: letter.key, Body: createReadStream(path), ContentLength: size, ContentType: 'application/gzip', ...(ctx.options.acl ? { ACL: ctx.options.acl } : {}) }),
      );
      await unlink(path);
      await unlink(sidecar);
      result.delivered.push({ ...letter, path });
    } catch (err) {
      result.failed.push({ letter: { ...letter, path }, error: new UploadError(letter.bucket, letter.key, err) });
    }
  }
  return result;
}
