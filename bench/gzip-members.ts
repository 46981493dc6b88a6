// Which readers take an object compressed in pieces, and what the pieces
// cost in size: the evidence for how a hot destination compresses on
// several cores (issue 13). Usage:
//   npx tsx bench/gzip-members.ts [--mib 64] [--piece-kib 1024] [--level 6]
//
// The same log lines (bench/inputs.ts) compressed four ways:
// - one:       one gzip member, one deflate stream (what one compressor makes);
// - members:   a gzip member per piece, concatenated (RFC 1952 allows a series
//              of members; what `parallelGzip` writes);
// - fragments: ONE gzip member whose deflate stream is the pieces' raw deflate
//              output, each ended by a sync flush (an empty stored block) and
//              not final, then a final empty block and the trailer (CRC-32 and
//              length of the whole): pieces compress apart, the file is one member;
// - dict:      fragments, each piece primed with the 32 KiB before it as its
//              deflate dictionary (what pigz does), which wins back most of
//              the ratio the cut lost.
// Then each file is read by zcat, Python's gzip module, Python's
// zlib.decompress(wbits=31) (a common idiom), Java's GZIPInputStream,
// Node's zlib.gunzipSync and Go's compress/gzip, and the output compared
// with the input. Prints two tables.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { DICTIONARY_BYTES, gzipHeader, MemberSum, pieceOptions } from '../lib/gzipPieces.js';
import { makeInput } from './inputs.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const MIB = arg('mib', 64);
const PIECE = arg('piece-kib', 1024) * 1024;
const LEVEL = arg('level', 6);

/** Pieces of about `size` bytes, cut after a newline. */
function pieces(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0; start < data.length; ) {
    let end = Math.min(data.length, start + size);
    if (end < data.length) {
      const nl = data.indexOf(10, end);
      end = nl < 0 ? data.length : nl + 1;
    }
    out.push(data.subarray(start, end));
    start = end;
  }
  return out;
}

/** One gzip member from pieces compressed apart, as the sink writes it (lib/gzipPieces.ts). */
function oneMember(data: Buffer, parts: Buffer[], dictionary: boolean): Buffer {
  const out: Buffer[] = [gzipHeader(LEVEL)];
  const sum = new MemberSum();
  let offset = 0;
  for (const part of parts) {
    const before = dictionary && offset > 0 ? data.subarray(Math.max(0, offset - DICTIONARY_BYTES), offset) : undefined;
    out.push(zlib.deflateRawSync(part, pieceOptions(LEVEL, before)));
    sum.add(part);
    offset += part.length;
  }
  out.push(sum.end());
  return Buffer.concat(out);
}

function cpu<T>(run: () => T): { value: T; seconds: number } {
  const start = process.cpuUsage();
  const value = run();
  const used = process.cpuUsage(start);
  return { value, seconds: (used.user + used.system) / 1e6 };
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 's3sink-members-'));
try {
  const input = await makeInput(join(dir, 'logs.txt'), 'logs', MIB * 1024 * 1024);
  const data = readFileSync(input.path);
  const parts = pieces(data, PIECE);
  const variants = {
    one: cpu(() => zlib.gzipSync(data, { level: LEVEL })),
    members: cpu(() => Buffer.concat(parts.map((part) => zlib.gzipSync(part, { level: LEVEL })))),
    fragments: cpu(() => oneMember(data, parts, false)),
    dict: cpu(() => oneMember(data, parts, true)),
  };
  const baseline = variants.one.value.length;
  console.log(`\n${(data.length / 2 ** 20).toFixed(1)} MiB of log lines, level ${LEVEL}, pieces of ${PIECE / 1024} KiB (${parts.length}); CPU on one thread\n`);
  console.log('| variant | compressed bytes | vs one member | CPU s |');
  console.log('|---|--:|--:|--:|');
  for (const [name, { value, seconds }] of Object.entries(variants)) {
    console.log(`| ${name} | ${value.length} | ${(value.length / baseline).toFixed(4)}× | ${seconds.toFixed(2)} |`);
  }

  const want = sha(data);
  const javaSource = join(dir, 'Gunzip.java');
  writeFileSync(javaSource, 'import java.io.*; import java.util.zip.*; public class Gunzip { public static void main(String[] a) throws Exception { try (InputStream in = new GZIPInputStream(new FileInputStream(a[0]), 65536)) { in.transferTo(System.out); } } }\n');
  const goSource = join(dir, 'gunzip.go');
  writeFileSync(goSource, 'package main\nimport ("compress/gzip"; "io"; "os")\nfunc main() { f, _ := os.Open(os.Args[1]); r, err := gzip.NewReader(f); if err != nil { panic(err) }; if _, err := io.Copy(os.Stdout, r); err != nil { panic(err) } }\n');
  const goBinary = join(dir, 'gunzip-go');
  let goBuilt = true;
  try {
    execFileSync('go', ['build', '-o', goBinary, goSource], { cwd: dir, env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', GO111MODULE: 'off' }, stdio: 'pipe' });
  } catch {
    goBuilt = false;
  }
  const py = (code: string) => (file: string) => execFileSync('python3', ['-c', code, file], { maxBuffer: 2 ** 31 });
  const readers: [string, (file: string) => Buffer][] = [
    ['zcat', (file) => execFileSync('zcat', [file], { maxBuffer: 2 ** 31 })],
    ["Python gzip.decompress", py('import gzip,sys; sys.stdout.buffer.write(gzip.decompress(open(sys.argv[1],"rb").read()))')],
    ['Python zlib.decompress(wbits=31)', py('import zlib,sys; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1],"rb").read(), 31))')],
    ["Java GZIPInputStream", (file) => execFileSync('java', [javaSource, file], { maxBuffer: 2 ** 31 })],
    ['Node zlib.gunzipSync', (file) => zlib.gunzipSync(readFileSync(file))],
    ...(goBuilt ? [["Go compress/gzip", (file: string) => execFileSync(goBinary, [file], { maxBuffer: 2 ** 31 })] as [string, (file: string) => Buffer]] : []),
  ];
  console.log(`\n| reader | ${Object.keys(variants).join(' | ')} |`);
  console.log(`|---|${Object.keys(variants).map(() => '---').join('|')}|`);
  for (const [name, read] of readers) {
    const cells = Object.entries(variants).map(([variant, { value }]) => {
      const file = join(dir, `${variant}.gz`);
      writeFileSync(file, value);
      try {
        const out = read(file);
        if (sha(out) === want) return 'all';
        return `**${((out.length / data.length) * 100).toFixed(1)} % only, no error**`;
      } catch (err) {
        return `error: ${String((err as Error).message).split('\n').find((l) => /rror/.test(l))?.slice(0, 60) ?? 'failed'}`;
      }
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
  if (!goBuilt) console.log('\n(Go reader skipped: go build failed)');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
