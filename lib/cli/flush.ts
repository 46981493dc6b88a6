import { readdir } from 'node:fs/promises';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { redeliverDeadLetters } from '../deadLetter.js';
import { messageOf } from '../errors.js';
import { s3Sink, type S3Sink } from '../sink.js';
import { SpoolLockedError, type Spool } from '../spool.js';
import type { FlushCommand } from './args.js';
import { Progress } from './progress.js';
import { clientConfig, usageOf, type Io } from './run.js';

/**
 * `s3-sink flush --spool-dir DIR`: delivers what a spool holds (what a crash
 * left, under the keys it recorded) and, with `--dead-letters`, puts its
 * dead letters back where they belonged. Exit 0 when the spool is empty after,
 * 1 when something is still there (said on stderr), 2 for a usage error.
 */
export async function runFlush(cmd: FlushCommand, io: Io, overrides: S3ClientConfig = {}): Promise<number> {
  let sink: S3Sink;
  try {
    sink = s3Sink({ ...cmd.sink, s3: clientConfig(cmd, overrides) });
  } catch (err) {
    if (err instanceof SpoolLockedError) {
      io.stderr.write(`s3-sink: ${err.message}\n`);
      return 1;
    }
    throw usageOf(err);
  }
  const progress = new Progress(io.stderr, () => sink.stats(), cmd.quiet);
  sink.on('object', (receipt) => progress.object(receipt));
  sink.on('warning', (warning) => progress.warning(warning));
  sink.on('dead-letter', (letter) => progress.deadLetter(letter));
  const { dir, deadDir } = sink.context.spool as Spool;
  sink.on('recovered', (r) => progress.note(`recovered from ${dir}: ${r.events} events in ${r.batches} batches, delivered`));
  let code = 0;
  try {
    if (cmd.deadLetters) {
      const { delivered, failed } = await redeliverDeadLetters(sink.context, deadDir);
      for (const letter of delivered) progress.note(`dead letter delivered: s3://${letter.bucket}/${letter.key} (${letter.events} events)`);
      for (const { error } of failed) progress.note(`dead letter not delivered: ${error.message}`);
      if (failed.length > 0) code = 1;
    }
    await sink.close();
  } catch (err) {
    progress.note(`flush failed: ${messageOf(err)}`);
    code = 1;
  }
  progress.finish();
  const segments = (await readdir(dir)).filter((name) => name.endsWith('.seg')).length;
  const dead = (await readdir(deadDir, { recursive: true }).catch(() => [])).filter((name) => !name.startsWith('.spool'));
  const letters = dead.filter((name) => name.endsWith('.gz')).length;
  // Segments that could not be read are kept aside there too: only a person can say what they were.
  const unreadable = dead.filter((name) => name.endsWith('.seg')).length;
  if (segments + letters + unreadable > 0) {
    const kept = unreadable > 0 ? `, and ${unreadable} unreadable segments kept aside in ${deadDir}` : '';
    progress.note(`spool ${dir} still holds ${segments} batches and ${letters} dead letters in ${deadDir}${letters > 0 && !cmd.deadLetters ? ' (--dead-letters delivers those)' : ''}${kept}`);
    return 1;
  }
  progress.note(`spool ${dir} is empty`);
  return code;
}
