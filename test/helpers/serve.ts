import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { createServer, type ServeOptions, type SinkOptions, type SinkServer, type SpoolOptions } from '../../lib/index.js';
import { startCli, type CliRun } from './cli.js';
import { fixedClock } from './clock.js';

export interface Served {
  server: SinkServer;
  url: string;
  dir: string;
  /** POST `body` to `path`; the answer's status, headers and JSON body. */
  post(path: string, body: string | Buffer, headers?: Record<string, string>): Promise<Answer>;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/**
 * A server on a free loopback port in front of a sink with a spool in a new
 * directory (and, unless the test gives one, a clock that never moves: every
 * event in one window per destination). Shut down and removed after the test.
 */
export async function serve(
  t: { teardown(fn: () => Promise<void>): void },
  s3: S3ClientConfig,
  options: Omit<Partial<ServeOptions>, 'sink'> & { sink?: Partial<SinkOptions>; spool?: boolean | Omit<SpoolOptions, 'dir'> } = {},
): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-serve-'));
  const { sink, spool = true, ...rest } = options;
  const server = createServer({
    checkBucket: false,
    ...rest,
    sink: { bucket: 'bucket', s3, clock: fixedClock(), ...(spool ? { spool: { dir, ...(spool === true ? {} : spool) } } : {}), ...sink },
  });
  server.sink.on('warning', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    await server.shutdown().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return { server, url, dir, post: (path, body, headers = {}) => post(`${url}${path}`, body, headers) };
}

export async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', body, headers });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** `count` JSON lines numbered from `from` (each with its number `n`), as one ndjson body. */
export function ndjson(from: number, count: number, extra: Record<string, unknown> = {}): string {
  let s = '';
  for (let n = from; n < from + count; n++) s += `${JSON.stringify({ n, ...extra })}\n`;
  return s;
}

/** The same events as `/v1/send` records. */
export function records(from: number, count: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify(Array.from({ length: count }, (_, i) => ({ payload: { n: from + i, ...extra } })));
}

/** `s3-sink serve` in a child process (the built CLI), on a free loopback port; resolves once it listens. */
export async function startServeCli(args: string[], env: Record<string, string> = {}): Promise<{ run: CliRun; url: string }> {
  const run = startCli(['serve', ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...args], env);
  run.child.stdin.end();
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const m = /listening on http:\/\/[\d.]+:(\d+)/.exec(run.stderr());
      if (m) {
        run.child.stderr.off('data', onData);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    };
    run.child.stderr.on('data', onData);
    run.exit.then(({ code }) => reject(new Error(`serve exited with ${code} before it listened: ${run.stderr()}`)), reject);
  });
  return { run, url };
}
