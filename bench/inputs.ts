import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from '../test/helpers/data.js';

/**
 * Benchmark inputs, the same bytes on every run (a seeded generator), written
 * once into the bench's temp directory:
 * - `logs`: JSON log lines as a service writes them (about 260 bytes each),
 *   with a `service` among 8 values and a `tenant` among 1 000;
 * - `tiny`: 50-byte lines (49 characters and `\n`), for events per second;
 * - `noise`: lines of random base64, which gzip cannot shrink much;
 * - `wide`: the same log lines with a `tenant` among 10 000 (wide fan-out).
 */

export type InputKind = 'logs' | 'tiny' | 'noise' | 'wide';

const SERVICES = ['api', 'web', 'billing', 'search', 'auth', 'mail', 'jobs', 'media'];
const PATHS = ['/', '/login', '/api/v1/orders', '/api/v1/orders/{id}', '/api/v1/users/{id}', '/health', '/static/app.js', '/search?q={q}', '/checkout', '/api/v2/cart'];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 'Mozilla/5.0 (Macintosh) Safari/605.1.15', 'curl/8.5.0', 'okhttp/4.12.0', 'Go-http-client/2.0'];
const LEVELS = ['info', 'info', 'info', 'info', 'info', 'info', 'debug', 'warn', 'warn', 'error'];
const WORDS = ['order', 'created', 'user', 'session', 'cache', 'miss', 'hit', 'retry', 'upstream', 'timeout', 'payment', 'accepted', 'queued', 'sent', 'rendered', 'template'];
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function hex(random: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(random() * 16)];
  return s;
}

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)] as T;
}

function logLine(random: () => number, i: number, tenants = 1000): string {
  const service = pick(random, SERVICES);
  const path = pick(random, PATHS).replace('{id}', String(Math.floor(random() * 100000))).replace('{q}', pick(random, WORDS));
  const status = random() < 0.9 ? 200 : pick(random, [201, 204, 301, 400, 401, 404, 500, 503]);
  const words = Array.from({ length: 3 + Math.floor(random() * 6) }, () => pick(random, WORDS)).join(' ');
  return JSON.stringify({
    ts: new Date(Date.UTC(2026, 0, 1) + i * 7).toISOString(),
    level: pick(random, LEVELS),
    service,
    tenant: `t${Math.floor(random() * tenants)}`,
    host: `${service}-${Math.floor(random() * 12)}`,
    request_id: hex(random, 16),
    method: random() < 0.8 ? 'GET' : 'POST',
    path,
    status,
    ms: Math.round(random() * random() * 2000) / 10,
    agent: pick(random, AGENTS),
    msg: words,
  });
}

function tinyLine(random: () => number, i: number): string {
  return `${String(i).padStart(10, '0')} ${pick(random, LEVELS).padEnd(5)} ${hex(random, 32)}`; // 49 characters
}

function noiseLine(random: () => number): string {
  let s = '';
  const n = 200 + Math.floor(random() * 200);
  for (let i = 0; i < n; i++) s += B64[Math.floor(random() * 64)];
  return s;
}

export interface Input {
  path: string;
  bytes: number;
  lines: number;
}

/** Writes `bytes` (at least) of `kind` to `path`, unless it is there already. */
export async function makeInput(path: string, kind: InputKind, bytes: number): Promise<Input> {
  const random = prng(kind === 'logs' ? 1 : kind === 'tiny' ? 2 : kind === 'noise' ? 3 : 4);
  const out = createWriteStream(path, { highWaterMark: 1024 * 1024 });
  let written = 0;
  let lines = 0;
  while (written < bytes) {
    let chunk = '';
    for (let k = 0; k < 2000; k++, lines++) {
      chunk += `${kind === 'logs' ? logLine(random, lines) : kind === 'wide' ? logLine(random, lines, 10_000) : kind === 'tiny' ? tinyLine(random, lines) : noiseLine(random)}\n`;
    }
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { path, bytes: (await stat(path)).size, lines };
}

/** Where the benchmarks keep their inputs, made once and used by every run. */
export const INPUT_DIR = join(tmpdir(), 's3-sink-bench-inputs-v1');

/**
 * The input `name` of `kind` and `bytes` in INPUT_DIR: made the first time
 * (saying so on stderr), with what it holds written next to it, and read
 * from there after.
 */
export async function cachedInput(name: string, kind: InputKind, bytes: number): Promise<Input> {
  mkdirSync(INPUT_DIR, { recursive: true });
  const path = join(INPUT_DIR, `${name}-${bytes}.txt`);
  const meta = `${path}.json`;
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8')) as Input;
  process.stderr.write(`generating ${name} (${bytes / (1024 * 1024)} MiB) in ${INPUT_DIR}\n`);
  const input = await makeInput(path, kind, bytes);
  writeFileSync(meta, JSON.stringify(input));
  return input;
}
