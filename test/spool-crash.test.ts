import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FsyncPolicy } from '../lib/index.js';
import { prng } from './helpers/data.js';
import { eventually } from './helpers/wait.js';
import { useLocalS3 } from './helpers/s3.js';

// The proxy (for the multipart test) stalls CompleteMultipartUpload while `stallComplete` is set, and answers AbortMultipartUpload itself (s3rver lacks it).
let stallComplete = true;
const env = useLocalS3(test, ['bucket'], {
  fault: (operation) =>
    operation === 'CompleteMultipartUpload' && stallComplete ? { kind: 'stall' } : operation === 'AbortMultipartUpload' ? { kind: 'respond', status: 204 } : { kind: 'pass' },
});
const CHILD = fileURLToPath(new URL('./fixtures/spool-child.ts', import.meta.url));

interface Run {
  durable: number[];
  done: boolean;
  killed: boolean;
}

/** Runs the child on `dir` with events [from, from + count) under `prefix`; kills it with SIGKILL once `killAfter` events are durable (never, when null). */
function run(dir: string, fsync: FsyncPolicy, prefix: string, from: number, count: number, killAfter: number | null, endpoint = env.s3.endpoint): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, endpoint, dir, fsync, prefix, String(from), String(count)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
    const result: Run = { durable: [], done: false, killed: false };
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as { durable?: number[]; done?: unknown };
      if (message.durable) result.durable.push(...message.durable);
      if (message.done) result.done = true;
      if (killAfter !== null && !result.killed && result.durable.length >= killAfter) {
        result.killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(result);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}


async function crashLoop(t: import('ava').ExecutionContext, fsync: FsyncPolicy, seed: number, runs: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const random = prng(seed);
  const PER_RUN = 3000;
  const durable = new Set<number>();
  let killed = 0;
  for (let r = 0; r < runs; r++) {
    const killAfter = 1 + Math.floor(random() * PER_RUN);
    const result = await run(dir, fsync, fsync, r * PER_RUN, PER_RUN, killAfter);
    for (const n of result.durable) durable.add(n);
    if (result.killed) killed += 1;
  }
  // A last run with no input delivers what the others left.
  const last = await run(dir, fsync, fsync, runs * PER_RUN, 0, null);
  t.true(last.done);

  const seen = await env.s3.countEvents('bucket', `${fsync}/`);
  // The events of each run's range sit on three prefixes; check each event once.
  const twice = [...seen].filter(([, count]) => count > 1).map(([n]) => n);

  t.deepEqual(twice, [], 'no event twice');
  const missing = [...durable].filter((n) => !seen.has(n));
  t.deepEqual(missing, [], 'every event reported durable is in S3');
  const unsent = [...seen.keys()].filter((n) => n < 0 || n >= runs * PER_RUN);
  t.deepEqual(unsent, [], 'nothing that was not sent');
  t.true(killed >= runs - 2, `${killed} of ${runs} runs were killed mid-way`);
  t.true(durable.size > PER_RUN, `${durable.size} events were reported durable`);
  t.deepEqual((await readdir(dir)).sort(), ['dead'], 'no segment and no lock left');
  t.deepEqual(await readdir(join(dir, 'dead')), []);
  t.log({ runs, killed, durable: durable.size, inS3: seen.size });
}

test.serial("kill -9 at 20 seeded points, fsync 'interval': every durable event in S3 exactly once, nothing unsent, spool empty", async (t) => {
  await crashLoop(t, 'interval', 9001, 20);
});

test.serial("kill -9 at 20 seeded points, fsync 'always': the same", async (t) => {
  await crashLoop(t, 'always', 4242, 20);
});

test.serial('kill -9 with a multipart upload under way, twice (the second time during recovery): the restart aborts both uploads and delivers the batch whole, once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-crash-mpu-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const uploadIdOf = (url: string) => new URL(url, 'http://x').searchParams.get('uploadId');
  // Run 1: 8000 events of 1 KB noise to one prefix (one batch, several parts); its CompleteMultipartUpload never answers.
  const durable: number[] = [];
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, env.proxy.endpoint, dir, 'interval', 'mpu', '0', '8000', 'big'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  child.stderr.resume();
  createInterface({ input: child.stdout }).on('line', (line) => durable.push(...((JSON.parse(line) as { durable?: number[] }).durable ?? [])));
  // It closes its window at the end of its input; kill it once the completion is stalled.
  const killed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await eventually(() => env.proxy.log.some((l) => l.operation === 'CompleteMultipartUpload'), 'the stalled CompleteMultipartUpload', 60_000);
  child.kill('SIGKILL');
  await killed;
  const started = env.proxy.log.find((l) => l.operation === 'UploadPart' && l.status === 200);
  t.truthy(started, 'parts went up before the kill');
  const uploadId = uploadIdOf(started!.url);
  t.is(durable.length, 8000, 'every event was durable before the window closed');

  // Run 2, recovering it: its own upload of the batch stalls at completion too, and it is killed there.
  const recovering = spawn(process.execPath, ['--import', 'tsx', CHILD, env.proxy.endpoint, dir, 'interval', 'mpu', '8000', '0'], { stdio: ['ignore', 'ignore', 'ignore'] });
  const recoveringGone = new Promise<void>((resolve) => recovering.on('close', () => resolve()));
  await eventually(() => env.proxy.log.filter((l) => l.operation === 'CompleteMultipartUpload').length >= 2, 'the recovery\'s stalled completion', 60_000);
  recovering.kill('SIGKILL');
  await recoveringGone;
  const secondId = uploadIdOf([...env.proxy.log].reverse().find((l) => l.operation === 'UploadPart')!.url);
  t.not(secondId, uploadId);

  // Run 3, on the same spool with no input: abort both noted uploads, deliver the batch.
  stallComplete = false;
  const last = await run(dir, 'interval', 'mpu', 8000, 0, null, env.proxy.endpoint);
  t.true(last.done);
  const aborts = env.proxy.log.filter((l) => l.operation === 'AbortMultipartUpload').map((l) => uploadIdOf(l.url));
  t.true(aborts.includes(uploadId), `AbortMultipartUpload of ${uploadId}: ${aborts.join(', ')}`);
  t.true(aborts.includes(secondId), `AbortMultipartUpload of ${secondId} (started during recovery): ${aborts.join(', ')}`);
  const seen = await env.s3.countEvents('bucket', 'mpu/');
  t.is(seen.size, 8000);
  t.deepEqual([...seen.values()].filter((count) => count !== 1), []);
  t.deepEqual((await readdir(dir)).sort(), ['dead']);
});
