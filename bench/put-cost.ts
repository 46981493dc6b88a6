// What one small object's upload costs the main thread: the floor under a
// wide fan-out, where every destination's batch is one PutObject at the end
// of its window (issue 13). Usage:
//   npx tsx bench/put-cost.ts [--requests 1000] [--kib 30] [--rounds 3]
//
// Each variant runs in a process of its own (the SDK's code is cold in it,
// as in a CLI run), against one s3rver in another process (its CPU is not
// counted), `--requests` PUTs of `--kib` KiB (about the size of each object
// of the bench's 1 000-destination run), 16 at a time (`maxUploads`); the
// order of the variants turns from round to round:
// - sdk:    the sink's own path: a `sinkContext` as the CLI makes it for
//           `--endpoint` (path style, checksums only when required), and its
//           `Transport` (a timeout and an abort signal per attempt), sending
//           `PutObjectCommand`s; a run with a retry is refused;
// - signed: the same PUT with `node:http`, signed by `signV4` (sigv4.ts,
//           about 20 lines of `node:crypto`): what signing small PutObjects
//           ourselves would cost. s3rver does not check SigV4 signatures, so
//           each signed run first checks `signV4` against the SDK's own
//           signer (`checkAgainstSdk`);
// - http:   the same bodies PUT with `node:http`, unsigned, on a keep-alive
//           agent: what sending the bytes costs at all.
// Each process measures its main thread's CPU (`/proc/self/task/PID/stat`,
// in ticks of 10 ms: ±0.01 ms a request at 1 000 requests) over the first
// `--requests` (cold) and then over as many again (warm). Prints a table:
// the figures, the unsigned variant of the same rounds as the baseline, and
// the ratio; the medians of the rounds.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveFlag } from './flags.js';
import { startService } from './service.js';
import { checkAgainstSdk, signV4 } from './sigv4.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const CONCURRENCY = 16;
const BUCKET = 'bench';
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const VARIANTS = ['sdk', 'signed', 'http'] as const;
type Variant = (typeof VARIANTS)[number];
const NAMES: Record<Variant, string> = { sdk: 'SDK PutObject (the sink’s Transport)', signed: 'node:http PUT, SigV4 by node:crypto', http: 'node:http PUT, unsigned' };

interface Phase {
  wall: number;
  main: number;
}
type Measured = { cold: Phase; warm: Phase };

/** The main thread's CPU seconds so far (Linux; clock ticks of 1/100 s). */
function mainCpu(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A PUT of `body` through `node:http`, with `signed` headers or none; rejects on any status but 200. */
function httpPut(agent: http.Agent, endpoint: URL, key: string, body: Buffer, signed: boolean): Promise<void> {
  const path = `/${BUCKET}/${key}`;
  const headers: Record<string, string | number> = { 'content-length': body.length, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' };
  if (signed) Object.assign(headers, signV4('PUT', endpoint.host, path, headers, body, 'us-east-1', CREDENTIALS));
  return new Promise((resolve, reject) => {
    const request = http.request({ host: endpoint.hostname, port: endpoint.port, method: 'PUT', path, agent, headers }, (response) => {
      response.on('error', reject);
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`PUT ${key}: HTTP ${response.statusCode}`))));
      response.resume();
    });
    request.on('error', reject);
    request.end(body);
  });
}

async function child(variant: Variant, endpoint: string, requests: number, kib: number): Promise<void> {
  const body = randomBytes(kib * 1024);
  let put: (key: string) => Promise<unknown>;
  let close: () => Promise<void>;
  if (variant === 'sdk') {
    const { sinkContext } = await import('../lib/context.js');
    const { clientConfig } = await import('../lib/cli/run.js');
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const ctx = sinkContext({ bucket: BUCKET, s3: { ...clientConfig({ endpoint, region: undefined, checksum: undefined }), credentials: CREDENTIALS } });
    put = (key) => ctx.transport.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'application/x-ndjson', ContentEncoding: 'gzip' }));
    close = async () => {
      const { retries } = ctx.counters;
      await ctx.dispose();
      if (retries > 0) throw new Error(`${retries} requests were retried: the figures would include them`);
    };
  } else {
    if (variant === 'signed') await checkAgainstSdk();
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const url = new URL(endpoint);
    put = (key) => httpPut(agent, url, key, body, variant === 'signed');
    close = async () => agent.destroy();
  }
  const phase = async (name: string): Promise<Phase> => {
    const started = performance.now();
    const cpu = mainCpu();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests) await put(`put-cost/${variant}/${process.pid}/${name}/${next++}`);
      }),
    );
    return { wall: (performance.now() - started) / 1000, main: mainCpu() - cpu };
  };
  const cold = await phase('cold');
  const warm = await phase('warm');
  await close();
  process.stdout.write(`${JSON.stringify({ cold, warm } satisfies Measured)}\n`);
}

async function runChild(variant: Variant, endpoint: string, requests: number, kib: number): Promise<Measured> {
  const proc = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', variant, endpoint, String(requests), String(kib)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk));
  // 'close', not 'exit': by 'close' its stdout has been read to the end.
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    proc.once('error', reject);
    proc.stdout.on('error', reject);
    proc.once('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  });
  if (code !== 0) throw new Error(`the ${variant} run ${signal === null ? `exited with ${code}` : `was killed by ${signal}`}`);
  return JSON.parse(out) as Measured;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { requests: { type: 'string' }, kib: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  const requests = positiveFlag(values, 'requests', 1000);
  const kib = positiveFlag(values, 'kib', 30);
  const rounds = positiveFlag(values, 'rounds', 3);
  const s3 = await startService('s3rver-process.ts', [BUCKET]);
  const endpoint = s3.info.endpoint as string;
  const results: Record<Variant, Measured[]> = { sdk: [], signed: [], http: [] };
  try {
    for (let round = 1; round <= rounds; round++) {
      // Each variant first, then later, in turn: no variant always runs on a machine just warmed (or slowed) by another.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round - 1) % VARIANTS.length] as Variant);
      for (const variant of order) {
        process.stderr.write(`round ${round}/${rounds}: ${variant} ... `);
        const measured = await runChild(variant, endpoint, requests, kib);
        results[variant].push(measured);
        process.stderr.write(`cold ${measured.cold.main.toFixed(2)} s, warm ${measured.warm.main.toFixed(2)} s of main thread\n`);
      }
    }
  } finally {
    await s3.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const perRequest = (runs: Measured[], phase: keyof Measured) => (1000 * median(runs.map((r) => r[phase].main))) / requests;
  const wall = (runs: Measured[], phase: keyof Measured) => median(runs.map((r) => r[phase].wall));
  console.log(`\n${requests} PUTs of ${kib} KiB, ${CONCURRENCY} at a time, into s3rver (another process); medians of ${rounds} rounds\n`);
  console.log('| variant | phase | wall s | main thread CPU per request, ms | baseline (same rounds) | ratio |');
  console.log('|---|---|--:|--:|---|--:|');
  for (const phase of ['cold', 'warm'] as const) {
    const base = perRequest(results.http, phase);
    for (const variant of VARIANTS) {
      const ms = perRequest(results[variant], phase);
      const measured = variant !== 'http';
      console.log(`| ${NAMES[variant]} | ${phase} | ${wall(results[variant], phase).toFixed(2)} | ${ms.toFixed(2)} | ${measured ? `unsigned, ${phase}` : '-'} | ${measured ? (ms / base).toFixed(1) : '-'} |`);
    }
  }
}

const args = process.argv.slice(2);
if (args[0] === '--child') await child(args[1] as Variant, args[2] as string, Number(args[3]), Number(args[4]));
else await main();
