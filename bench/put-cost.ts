// What one small object's upload costs the main thread: the floor under a
// wide fan-out, where every destination's batch is one PutObject at the end
// of its window (issue 13). Usage:
//   npx tsx bench/put-cost.ts [--requests 1000] [--kib 30] [--rounds 3]
//
// Each variant runs in a process of its own (the SDK's code is cold in it,
// as in a CLI run), against one s3rver in another process (its CPU is not
// counted), `--requests` PUTs of `--kib` KiB (about the size of each object
// of the bench's 1 000-destination run), 16 at a time (`maxUploads`):
// - sdk:  the sink's own path: a `sinkContext` as the CLI makes it for
//         `--endpoint` (path style, checksums only when required), and its
//         `Transport` (a timeout and an abort signal per attempt), sending
//         `PutObjectCommand`s;
// - signed: the same PUT with `node:http`, signed by `signV4` below (about
//         20 lines of `node:crypto`): what signing small PutObjects
//         ourselves would cost. s3rver does not check SigV4 signatures
//         (that part of it is unimplemented), so `signV4` was checked
//         against the SDK's own signer (`@smithy/signature-v4`) once, for
//         the same request and time: the same Authorization header;
// - http: the same bodies PUT with `node:http`, unsigned, on a keep-alive
//         agent: what sending the bytes costs at all.
// Each process measures its main thread's CPU (`/proc/self/task/PID/stat`)
// over the first `--requests` (cold) and then over as many again (warm).
// Prints a table: the figures, the unsigned variant of the same rounds as
// the baseline, and the ratio; the medians of the rounds.
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const CONCURRENCY = 16;
const VARIANTS = ['sdk', 'signed', 'http'] as const;
const NAMES: Record<(typeof VARIANTS)[number], string> = { sdk: 'SDK PutObject (the sink’s Transport)', signed: 'node:http PUT, SigV4 by node:crypto', http: 'node:http PUT, unsigned' };
const BUCKET = 'bench';

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

async function child(variant: string, endpoint: string, requests: number, kib: number): Promise<void> {
  const body = randomBytes(kib * 1024);
  let put: (key: string) => Promise<unknown>;
  let close = async (): Promise<void> => {};
  if (variant === 'sdk') {
    const { sinkContext } = await import('../lib/context.js');
    const { clientConfig } = await import('../lib/cli/run.js');
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const ctx = sinkContext({ bucket: BUCKET, s3: { ...clientConfig({ endpoint, region: undefined, checksum: undefined }), credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } } });
    put = (key) => ctx.transport.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'application/x-ndjson', ContentEncoding: 'gzip' }));
    close = () => ctx.dispose();
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const url = new URL(endpoint);
    put = (key) =>
      new Promise((resolve, reject) => {
        const path = `/${BUCKET}/${key}`;
        const headers: Record<string, string | number> = { 'content-length': body.length, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' };
        if (variant === 'signed') Object.assign(headers, signV4('PUT', url.host, path, headers, body, 'us-east-1', { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }));
        const request = http.request({ host: url.hostname, port: url.port, method: 'PUT', path, agent, headers }, (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 200 ? resolve(undefined) : reject(new Error(`PUT ${key}: ${response.statusCode}`))));
          response.on('error', reject);
        });
        request.on('error', reject);
        request.end(body);
      });
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

/**
 * The headers that sign a request with AWS Signature Version 4 (`x-amz-date`,
 * `x-amz-content-sha256`, `authorization`), for the `signed` variant: what
 * signing a PutObject ourselves would cost. Its canonical request signs
 * every header given; `path` is sent as it is (its segments need no
 * encoding here).
 */
function signV4(method: string, host: string, path: string, headers: Record<string, string | number>, body: Buffer, region: string, credentials: { accessKeyId: string; secretAccessKey: string }): Record<string, string> {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = createHash('sha256').update(body).digest('hex');
  const all: Record<string, string> = { host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  for (const [name, value] of Object.entries(headers)) all[name.toLowerCase()] = String(value).trim();
  const names = Object.keys(all).sort();
  const signedHeaders = names.join(';');
  const canonical = [method, path, '', ...names.map((name) => `${name}:${all[name]}`), '', signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = Buffer.from(`AWS4${credentials.secretAccessKey}`);
  for (const part of [day, region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return { 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash, authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
}

async function runChild(variant: string, endpoint: string, requests: number, kib: number): Promise<Measured> {
  const proc = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', variant, endpoint, String(requests), String(kib)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`${variant} run exited with ${code}`);
  return JSON.parse(out) as Measured;
}

async function main(): Promise<void> {
  const requests = arg('requests', 1000);
  const kib = arg('kib', 30);
  const rounds = arg('rounds', 3);
  const s3 = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench', 's3rver-process.ts'), BUCKET], { stdio: ['pipe', 'pipe', 'inherit'] });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    s3.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0] as string) as { endpoint: string }).endpoint);
    });
    s3.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  const results: Record<string, Measured[]> = { sdk: [], signed: [], http: [] };
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const variant of VARIANTS) {
        process.stderr.write(`round ${round}/${rounds}: ${variant} ... `);
        const measured = await runChild(variant, endpoint, requests, kib);
        (results[variant] as Measured[]).push(measured);
        process.stderr.write(`cold ${measured.cold.main.toFixed(2)} s, warm ${measured.warm.main.toFixed(2)} s of main thread\n`);
      }
    }
  } finally {
    s3.stdin.end();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const perRequest = (runs: Measured[], phase: keyof Measured) => (1000 * median(runs.map((r) => r[phase].main))) / requests;
  const wall = (runs: Measured[], phase: keyof Measured) => median(runs.map((r) => r[phase].wall));
  console.log(`\n${requests} PUTs of ${kib} KiB, ${CONCURRENCY} at a time, into s3rver (another process); medians of ${rounds} rounds\n`);
  console.log('| variant | phase | wall s | main thread CPU per request, ms | baseline (same rounds) | ratio |');
  console.log('|---|---|--:|--:|---|--:|');
  for (const phase of ['cold', 'warm'] as const) {
    const base = perRequest(results.http as Measured[], phase);
    for (const variant of VARIANTS) {
      const runs = results[variant] as Measured[];
      const ms = perRequest(runs, phase);
      const measured = variant !== 'http';
      console.log(`| ${NAMES[variant]} | ${phase} | ${wall(runs, phase).toFixed(2)} | ${ms.toFixed(2)} | ${measured ? `unsigned, ${phase}` : '-'} | ${measured ? (ms / base).toFixed(1) : '-'} |`);
    }
  }
}

if (args[0] === '--child') await child(args[1] as string, args[2] as string, Number(args[3]), Number(args[4]));
else await main();
