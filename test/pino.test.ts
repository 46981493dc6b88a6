import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCli } from './helpers/cli.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], {});
const CHILD = fileURLToPath(new URL('./fixtures/pino-child.ts', import.meta.url));

/** Runs the child service to its end; resolves with its exit code and stderr. */
async function service(how: 'natural' | 'exit', count: number, endpoint: string, spoolDir: string, prefix: string, run: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, how, String(count), endpoint, spoolDir, prefix, run], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

/** Every log line under `prefix`, as `run:i`, in key order. */
async function logged(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of (await env.s3.keys('bucket', prefix)).sort()) {
    for (const line of await env.s3.lines('bucket', key)) {
      const record = JSON.parse(line) as { run: string; i: number; msg: string; level: number };
      out.push(`${record.run}:${record.i}`);
    }
  }
  return out;
}

function expected(run: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${run}:${i}`);
}

async function spoolSegments(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.seg'));
}

/**
 * The transport gives S3 deliverOnCloseMs (500 ms in the child) at exit; on a
 * loaded machine an upload can take longer, and what it had not taken waits in
 * the spool for the next start (here: flush). Either way, every line once.
 */
async function flushLeftovers(t: ExecutionContext, dir: string): Promise<void> {
  const left = await spoolSegments(dir);
  if (left.length === 0) return;
  t.log(`${left.length} segments left in the spool at exit (S3 slower than deliverOnCloseMs): delivered by flush`);
  const flush = startCli(['flush', '--spool-dir', dir, '--endpoint', env.s3.endpoint, '--quiet']);
  t.is((await flush.exit).code, 0, flush.stderr());
}

for (const how of ['natural', 'exit'] as const) {
  test(`a service that logs 5000 lines and exits (${how === 'exit' ? 'process.exit()' : 'its event loop empties'}) has every line in S3 once`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 's3-sink-pino-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const prefix = `pino-${how}/`;
    const { code, stderr } = await service(how, 5000, env.s3.endpoint, dir, prefix, 'a');
    t.is(code, 0, stderr);
    await flushLeftovers(t, dir);
    t.deepEqual((await logged(prefix)).sort(), expected('a', 5000).sort());
    t.deepEqual(await spoolSegments(dir), [], 'nothing left in the spool');
  });
}

test('without a spool, a service that logs and calls process.exit() with S3 up still has every line in S3 (pino waits for the worker)', async (t) => {
  const { code, stderr } = await service('exit', 2000, env.s3.endpoint, '-', 'pino-nospool/', 'a');
  t.is(code, 0, stderr);
  t.deepEqual((await logged('pino-nospool/')).sort(), expected('a', 2000).sort());
});

test('S3 unreachable at process.exit(): every line waits in the spool, and the next start of the service delivers it with its own, each once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-pino-down-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const prefix = 'pino-down/';
  await env.proxy.down();
  try {
    const { code, stderr } = await service('exit', 3000, env.proxy.endpoint, dir, prefix, 'first');
    t.is(code, 0, stderr);
    t.true((await spoolSegments(dir)).length > 0, 'the lines are in the spool');
  } finally {
    await env.proxy.up();
  }
  t.deepEqual(await logged(prefix), [], 'nothing reached S3');
  const { code, stderr } = await service('natural', 1000, env.proxy.endpoint, dir, prefix, 'second');
  t.is(code, 0, stderr);
  await flushLeftovers(t, dir);
  t.deepEqual((await logged(prefix)).sort(), [...expected('first', 3000), ...expected('second', 1000)].sort());
  t.deepEqual(await spoolSegments(dir), []);
});
