// What the stages before compression cost, alone: splitting lines, routing
// them, `window` and `join`, over the bench's `logs` input, with no
// compression and no S3 (issue 13: the part of a fan-out's main thread that
// is not the upload). Usage:
//   npx tsx bench/front-cost.ts [--mib 200] [--rounds 3]
//
// The exported stages, as `s3Sink` composes them, piped from the file
// (read 128 KiB at a time, as the CLI reads a file) into a Writable that
// only counts the joined pieces; a budget and object size too large to
// matter. Each prefix runs in turn, in this process, every round. Prints a
// table: CPU seconds, the fixed prefix of the same rounds as the baseline,
// the ratio; medians.
import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join, keyBy, lineGroups, parse, sinkContext, window } from '../lib/index.js';
import { fixedDestination } from '../lib/stages/lineGroups.js';
import { makeInput, type Input } from './inputs.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const MiB = 1024 * 1024;
const PREFIXES = [
  ['fixed prefix (lineGroups)', 'x/'],
  ['8 destinations ({service})', 'x/{service}/'],
  ['1000 destinations ({tenant})', 'x/{tenant}/'],
] as const;

async function front(path: string, prefix: string): Promise<{ cpu: number; pieces: number; bytes: number }> {
  const ctx = sinkContext({ bucket: 'bench', prefix, input: 'lines', maxBufferedBytes: 64 * 1024 * MiB, maxObjectBytes: 64 * 1024 * MiB, s3: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } } });
  let pieces = 0;
  let bytes = 0;
  const count = new Writable({
    objectMode: true,
    write(out: ({ data: Buffer } | { end: true })[], _encoding, callback) {
      for (const piece of out) {
        if (!('data' in piece)) continue;
        pieces += 1;
        bytes += piece.data.length;
      }
      callback();
    },
  });
  const stages = fixedDestination(ctx) !== null ? [lineGroups(ctx)] : [parse(ctx), keyBy(ctx)];
  const started = process.cpuUsage();
  await pipeline([createReadStream(path, { highWaterMark: 128 * 1024 }), ...stages, window(ctx), join(), count]);
  const used = process.cpuUsage(started);
  await ctx.dispose();
  return { cpu: (used.user + used.system) / 1e6, pieces, bytes };
}

/** The bench's own `logs` input (bench/run.ts makes the same file, in the same place, and says what it holds next to it). */
async function logsInput(bytes: number): Promise<Input> {
  const dir = joinPath(tmpdir(), 's3-sink-bench-inputs-v1');
  mkdirSync(dir, { recursive: true });
  const path = joinPath(dir, `logs-${bytes}.txt`);
  if (existsSync(`${path}.json`)) return JSON.parse(readFileSync(`${path}.json`, 'utf8')) as Input;
  process.stderr.write(`generating logs (${bytes / MiB} MiB) in ${dir}\n`);
  const made = await makeInput(path, 'logs', bytes);
  writeFileSync(`${path}.json`, JSON.stringify(made));
  return made;
}

const input = await logsInput(arg('mib', 200) * MiB);
const rounds = arg('rounds', 3);
const cpu = new Map<string, number[]>();
for (let round = 1; round <= rounds; round++) {
  for (const [name, prefix] of PREFIXES) {
    const { cpu: seconds, bytes, pieces } = await front(input.path, prefix);
    if (bytes !== input.bytes) throw new Error(`${name}: ${bytes} bytes joined, expected ${input.bytes}`);
    cpu.set(name, [...(cpu.get(name) ?? []), seconds]);
    process.stderr.write(`round ${round}/${rounds}: ${name}: ${seconds.toFixed(2)} s of CPU, ${pieces} pieces\n`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base = median(cpu.get(PREFIXES[0][0]) as number[]);
console.log(`\n${input.lines} lines, ${Math.round(input.bytes / MiB)} MiB of log lines through split, route, window and join (no compression, no S3); medians of ${rounds} rounds\n`);
console.log('| prefix | CPU s | baseline (same rounds) | ratio |');
console.log('|---|--:|---|--:|');
for (const [name] of PREFIXES) {
  const seconds = median(cpu.get(name) as number[]);
  console.log(`| ${name} | ${seconds.toFixed(2)} | ${name === PREFIXES[0][0] ? '-' : PREFIXES[0][0]} | ${name === PREFIXES[0][0] ? '-' : (seconds / base).toFixed(2)} |`);
}
