import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI (npm test builds before it runs the tests). */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliRun {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `s3-sink` with s3rver's credentials in the environment (the SDK's
 * default chain finds them) and without the switch that hides the SDK's
 * Node 22 warning, so the CLI has to hide it itself.
 */
export function startCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

function cliEnv(env: Record<string, string>): Record<string, string | undefined> {
  const childEnv: Record<string, string | undefined> = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', ...env };
  delete childEnv.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  delete childEnv.AWS_PROFILE;
  return childEnv;
}

/** Runs `s3-sink` to the end with the open file descriptor `fd` as its stdin (a file, a directory...). */
export async function runCliOn(fd: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv({}), stdio: [fd, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', (exitCode) => resolve(exitCode)));
  return { code, stdout, stderr };
}

/** Runs `s3-sink` to the end with `input` on stdin. */
export async function runCli(args: string[], input = '', env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = startCli(args, env);
  run.child.stdin.on('error', () => {}); // the CLI may exit before reading (usage errors)
  run.child.stdin.end(input);
  const { code } = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}
