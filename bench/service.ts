import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = fileURLToPath(new URL('.', import.meta.url));

export interface Service {
  /** The JSON line it printed when ready (s3rver: `{ endpoint, port }`). */
  info: Record<string, unknown>;
  /** Closes its stdin, which it takes as the order to stop, and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * A helper process of the benchmarks (s3rver, the throttling proxy): a script
 * of bench/ run with tsx, which prints one JSON line when ready and serves
 * until its stdin closes. Rejects if it exits or fails before that line.
 */
export async function startService(script: string, args: string[]): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(benchDir, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  // A service that died has closed its pipes: writing to them must not take the benchmark down.
  child.stdin.on('error', () => {});
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.stdout.on('error', reject);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] as string) as Record<string, unknown>);
    });
    void exited.then(() => reject(new Error(`${script} exited with ${child.exitCode ?? child.signalCode} before it was ready`)));
  });
  return {
    info,
    stop: () => {
      child.stdin.end();
      return exited;
    },
  };
}
