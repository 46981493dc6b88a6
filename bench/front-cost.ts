// What the stages before compression cost, alone: splitting lines, routing
// them, `window` and `join`, over the bench's `logs` input, with no
// compression and no S3 (issue 13: the part of a fan-out's main thread that
// is not the upload). Usage:
//   npx tsx bench/front-cost.ts [--mib 200] [--rounds 3]
//
// The exported stages, as `s3Sink` composes them with the CLI's options
// (`keepChunks`), piped from the file (read 128 KiB at a time, as the CLI
// reads a file) into a Writable that counts the joined pieces' bytes and
// lines (both must equal the input's); a budget and object size too large
// to matter. One pass of each prefix first, not counted (V8 compiles the
// stages then), then each prefix in turn every round, in an order that
// turns from round to round, all in this process. Prints a table: CPU
// seconds, the fixed prefix of the same rounds as the baseline, the ratio;
// medians. The fixed prefix's figure is small: its ratio is rough.
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { join, keyBy, lineGroups, parse, sinkContext, window } from '../lib/index.js';
import { fixedDestination } from '../lib/stages/lineGroups.js';
import { positiveFlag } from './flags.js';
import { cachedInput } from './inputs.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values: flags } = parseArgs({ options: { mib: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
const MiB = 1024 * 1024;
const PREFIXES = [
  ['fixed prefix (lineGroups)', 'x/'],
  ['8 destinations ({service})', 'x/{service}/'],
  ['1000 destinations ({tenant})', 'x/{tenant}/'],
] as const;

async function front(path: string, prefix: string): Promise<{ cpu: number; pieces: number; bytes: number; lines: number }> {
  const ctx = sinkContext({ bucket: 'bench', prefix, input: 'lines', keepChunks: true, maxBufferedBytes: 64 * 1024 * MiB, maxObjectBytes: 64 * 1024 * MiB, s3: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } } });
  let pieces = 0;
  let bytes = 0;
  let lines = 0;
  const count = new Writable({
    objectMode: true,
    write(out: ({ data: Buffer; events: number } | { end: true })[], _encoding, callback) {
      for (const piece of out) {
        if (!('data' in piece)) continue;
        pieces += 1;
        bytes += piece.data.length;
        lines += piece.events;
      }
      callback();
    },
  });
  const stages = fixedDestination(ctx) !== null ? [lineGroups(ctx)] : [parse(ctx), keyBy(ctx)];
  const started = process.cpuUsage();
  await pipeline([createReadStream(path, { highWaterMark: 128 * 1024 }), ...stages, window(ctx), join(), count]);
  const used = process.cpuUsage(started);
  await ctx.dispose();
  return { cpu: (used.user + used.system) / 1e6, pieces, bytes, lines };
}

const input = await cachedInput('logs', 'logs', positiveFlag(flags, 'mib', 200) * MiB);
const rounds = positiveFlag(flags, 'rounds', 3);
const cpu = new Map<string, number[]>();
/** One pass of a prefix: its CPU seconds, once its bytes and lines are checked. */
const measure = async (name: string, prefix: string): Promise<number> => {
  const { cpu: seconds, bytes, lines, pieces } = await front(input.path, prefix);
  if (bytes !== input.bytes || lines !== input.lines) throw new Error(`${name}: ${bytes} bytes and ${lines} lines joined, expected ${input.bytes} and ${input.lines}`);
  process.stderr.write(`${name}: ${seconds.toFixed(2)} s of CPU, ${pieces} pieces\n`);
  return seconds;
};
for (const [name, prefix] of PREFIXES) {
  process.stderr.write('warm-up (not counted): ');
  await measure(name, prefix);
}
for (let round = 1; round <= rounds; round++) {
  for (let i = 0; i < PREFIXES.length; i++) {
    const [name, prefix] = PREFIXES[(i + round - 1) % PREFIXES.length] as (typeof PREFIXES)[number];
    process.stderr.write(`round ${round}/${rounds}: `);
    cpu.set(name, [...(cpu.get(name) ?? []), await measure(name, prefix)]);
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
