import test from 'ava';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { s3Sink } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

// Hostile tests of the durable spool: each one a defect found and fixed.

const env = useLocalS3(test, ['bucket']);

async function tempDir(t: import('ava').ExecutionContext, name = 'hostile'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `s3-sink-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** File descriptors of this process open on files in `dir`. */
function openIn(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n += 1;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

test("fsync 'always' with 1200 open batches: segment files are closed past the limit of 256, not kept open one per batch (EMFILE at ulimit 1024)", async (t) => {
  const dir = await tempDir(t);
  const sink = s3Sink({ bucket: 'bucket', prefix: 'many/', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir, fsync: 'always' } });
  let peak = 0;
  sink.on('durable', () => {
    peak = Math.max(peak, openIn(dir));
  });
  for (let round = 0; round < 3; round++) {
    for (let n = 0; n < 1200; n++) if (!sink.write({ prefix: `many/${n}/`, payload: { n, round }, ack: n })) await new Promise((resume) => sink.once('drain', resume));
  }
  await sink.close();
  t.log({ peak });
  // 256, and more while the pieces of one chunk are written side by side; before the fix, one per batch (1200).
  t.true(peak < 600, `${peak} segment files open at once`);
});
