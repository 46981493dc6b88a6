import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Batch } from './batch.js';

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
  /** The .gz file on disk. */
  path: string;
  /** The S3 error code that made the sink give up. */
  code: string;
  error: string;
  /** When it was given up on (ISO 8601, UTC). */
  time: string;
  events: number;
  bytes: number;
  compressedBytes: number;
}

export class DeadLetterDir {
  readonly root: string;
  readonly #spool: string;

  /** Creates the directory (and its spool) now, so a bad path fails at start. */
  constructor(root: string) {
    this.root = resolve(root);
    this.#spool = join(this.root, '.spool');
    mkdirSync(this.#spool, { recursive: true });
  }

  open(batch: Batch): SpoolFile {
    const name = batch.key.slice(batch.key.lastIndexOf('/') + 1);
    return new SpoolFile(join(this.#spool, name), this.pathOf(batch));
  }

  /** Where a given-up batch lands. Keys never escape the directory. */
  pathOf(batch: Batch): string {
    const path = resolve(this.root, batch.bucket, ...batch.key.split('/').filter((s) => s !== '' && s !== '.' && s !== '..'));
    if (!path.startsWith(this.root + sep)) throw new Error(`dead-letter path for ${batch.key} escapes ${this.root}`);
    return path;
  }
}

export class SpoolFile {
  readonly #path: string;
  readonly #target: string;
  readonly #stream: WriteStream;

  constructor(path: string, target: string) {
    this.#path = path;
    this.#target = target;
    this.#stream = createWriteStream(path, { flags: 'wx' });
  }

  /** `false` when the caller should wait for `'drain'`. */
  write(data: Buffer): boolean {
    return this.#stream.write(data);
  }

  once(event: 'drain', callback: () => void): void {
    this.#stream.once(event, callback);
  }

  /** The object reached S3: the copy goes. */
  async discard(): Promise<void> {
    await this.#close();
    await unlink(this.#path).catch(() => {});
  }

  /** The upload was given up on: the copy becomes the dead letter, with its sidecar. */
  async commit(letter: Omit<DeadLetter, 'path'>): Promise<DeadLetter> {
    await this.#close();
    await mkdir(dirname(this.#target), { recursive: true });
    await rename(this.#path, this.#target);
    const full: DeadLetter = { ...letter, path: this.#target };
    await writeFile(`${this.#target}.json`, `${JSON.stringify(full, null, 2)}\n`);
    return full;
  }

  /** Left where it is (a destroyed sink): the partial copy stays in the spool. */
  abandon(): void {
    this.#stream.end();
  }

  #close(): Promise<void> {
    return new Promise((done, fail) => {
      if (this.#stream.closed) {
        done();
        return;
      }
      this.#stream.once('error', fail);
      this.#stream.end(() => done());
    });
  }
}
