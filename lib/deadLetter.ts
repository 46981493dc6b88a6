import { mkdirSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { SinkContext } from './context.js';
import { UploadError } from './errors.js';

/**
 * Dead letters: a batch whose upload was given up on becomes
 * `ROOT/<bucket>/<key>` (the same .gz object, under the same key) with a JSON
 * sidecar `ROOT/<bucket>/<key>.json` naming bucket, key, error and time.
 * ROOT is a spool's `dead/` directory, or the `deadLetter` directory (a spool
 * in `DIR/.spool` whose dead letters go to `DIR`). `aws s3 cp` of the file,
 * or `redeliverDeadLetters` (`s3-sink flush --dead-letters`), puts it where it
 * belonged.
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

  /** Creates the directory now, so a bad path fails at start. */
  constructor(root: string) {
    this.root = resolve(root);
    mkdirSync(this.root, { recursive: true });
  }

  /** Where a given-up batch lands. Keys never escape the directory. */
  pathOf(batch: { bucket: string; key: string }): string {
    const path = resolve(this.root, batch.bucket, ...batch.key.split('/').filter((s) => s !== '' && s !== '.' && s !== '..'));
    if (!path.startsWith(this.root + sep)) throw new Error(`dead-letter path for ${batch.key} escapes ${this.root}`);
    return path;
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
      // A Buffer, not a stream: the transport sends the same command again on a retry, and a stream is read once.
      const body = await readFile(path);
      await ctx.transport.send(new PutObjectCommand({ ...ctx.options.objectParams, Bucket: letter.bucket, Key: letter.key, Body: body, ContentLength: body.length }));
      await unlink(path);
      await unlink(sidecar);
      result.delivered.push({ ...letter, path });
    } catch (err) {
      result.failed.push({ letter: { ...letter, path }, error: new UploadError(letter.bucket, letter.key, err) });
    }
  }
  return result;
}
