/**
 * `npm run bench`: throughput and memory of s3-sink against a local S3.
 *
 * - Inputs are generated deterministically (bench/inputs.ts) once into a
 *   cache directory under the system temp directory.
 * - s3rver runs in a process of its own (its CPU is not charged to the
 *   sink); so does the throttling proxy of the memory run.
 * - Each round runs every scenario once, baselines included, one after the
 *   other, so machine noise hits all alike; the table shows the median over
 *   rounds and the ratio to the baseline measured in the same invocation.
 * - Every sink run is checked: the lines in S3 (downloaded, gunzipped,
 *   counted) must equal the lines sent.
 *
 * Flags: --rounds N (default 3), --quick (small inputs, one round),
 * --profile (also profile the main scenario with --cpu-prof and print where
 * the time goes), --only TEXT (only the scenarios whose names contain TEXT,
 * comma-separated, with their baselines; no memory runs unless TEXT includes
 * `memory`: for an A/B of one change). Results go to bench/results/<time>.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, availableParallelism, totalmem, tmpdir, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { cachedInput, INPUT_DIR, type Input, type InputKind } from './inputs.js';
import { startKafkaBench, type KafkaBench } from './kafka.js';
import { summarizeProfile } from './profile.js';
import { startService } from './service.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: flags } = parseArgs({ options: { rounds: { type: 'string' }, quick: { type: 'boolean' }, profile: { type: 'boolean' }, only: { type: 'string' } } });
const only = flags.only?.split(',').filter(Boolean) ?? null;
const quick = flags.quick ?? false;
const rounds = Number(flags.rounds ?? (quick ? 1 : 3));
const MiB = 1024 * 1024;
const SIZES = quick
  ? { logs: 20 * MiB, tiny: 10 * MiB, noise: 10 * MiB, small: 10 * MiB, large: 50 * MiB, serve1k: 2 * MiB, wide: 5 * MiB }
  : { logs: 200 * MiB, tiny: 100 * MiB, noise: 100 * MiB, small: 100 * MiB, large: 1024 * MiB, serve1k: 20 * MiB, wide: 20 * MiB };
/** Memory allowed above an idle CLI beyond `maxBufferedBytes` at any fan-out (issue 13): stream buffers, the SDK, one-shot compressors, per-destination state. */
const FANOUT_ALLOWANCE_MIB = 64;
/** Concurrent clients of the serve scenarios. */
const SERVE_CLIENTS = 16;
const THROTTLE_BYTES_PER_SECOND = 4_000_000;
const BUCKET = 'bench';
const cores = availableParallelism();
/** stdin through one `zlib.createGzip` at level 6 to nowhere: Node's compressor alone. */
const NODE_GZIP = "require('node:stream').pipeline(process.stdin, require('node:zlib').createGzip({ level: 6 }), require('node:fs').createWriteStream('/dev/null'), (err) => { if (err) throw err; })";

interface Measured {
  seconds: number;
  cpuSeconds: number | null;
  /** Of which the main thread (node runs only). */
  mainCpuSeconds: number | null;
  maxRssBytes: number | null;
  /** Serve scenarios: HTTP requests answered. */
  requests?: number;
  /** Checked runs: objects written per destination per window (keys grouped by prefix and minute). */
  objectsPerWindow?: number;
}

interface Row {
  scenario: string;
  input: string;
  baseline: string | null;
  runs: Measured[];
  bytes: number;
  lines: number;
}

// ---------------------------------------------------------------- processes

/** Node flags of every sink process; S3SINK_BENCH_NODE_ARGS adds some (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses). */
function nodeArgs(): string[] {
  return ['--import', join(root, 'bench', 'rusage.mjs'), ...(process.env.S3SINK_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
}

/** Runs node with `args`, stdin from `stdinFile`; wall time, and the child's own CPU and peak RSS. */
async function runNode(args: string[], stdinFile: string, env: Record<string, string> = {}): Promise<Measured & { stderr: string }> {
  const usageFile = join(tmpdir(), `s3-sink-bench-usage-${process.pid}-${Date.now()}.json`);
  const fd = openSync(stdinFile, 'r');
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeArgs(), ...args], {
    stdio: [fd, 'ignore', 'pipe'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', S3SINK_BENCH_RUSAGE: usageFile, ...env },
  });
  closeSync(fd);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited with ${code}:\n${stderr}`);
  const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as { cpuSeconds: number; mainCpuSeconds: number | null; maxRssBytes: number };
  rmSync(usageFile, { force: true });
  return { seconds, cpuSeconds: usage.cpuSeconds, mainCpuSeconds: usage.mainCpuSeconds, maxRssBytes: usage.maxRssBytes, stderr };
}

/** A shell pipeline (the gzip baselines), timed by bash: wall and CPU. */
function runShell(command: string): Measured {
  const result = spawnSync('bash', ['-c', `TIMEFORMAT='%R %U %S'; time ( ${command} )`], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command}: ${result.stderr}`);
  const [real, user, sys] = (result.stderr.trim().split('\n').pop() as string).split(' ').map(Number) as [number, number, number];
  return { seconds: real, cpuSeconds: user + sys, mainCpuSeconds: null, maxRssBytes: null };
}

// ---------------------------------------------------------------- checks

async function linesInS3(client: S3Client, prefix: string): Promise<number> {
  return (await census(client, prefix)).lines;
}

/**
 * Every object under `prefix` downloaded and gunzipped: its lines, and the
 * objects per destination per window (a key's prefix before its date folders,
 * and the minute its file name starts with; windows are the default 60 s).
 */
async function census(client: S3Client, prefix: string): Promise<{ lines: number; objectsPerWindow: number }> {
  let marker: string | undefined;
  let lines = 0;
  let objects = 0;
  const windows = new Set<string>();
  for (;;) {
    const page = await client.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: prefix, Marker: marker }));
    for (const o of page.Contents ?? []) {
      const m = /^(.*)\/\d{4}\/\d\d\/\d\d\/\d\d\/(\d{4}-\d\d-\d\d-\d\d-\d\d)-/.exec(o.Key as string);
      windows.add(m ? `${m[1]} ${m[2]}` : (o.Key as string));
      objects += 1;
      const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key }));
      const body = gunzipSync(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      for (let i = body.indexOf(10); i !== -1; i = body.indexOf(10, i + 1)) lines += 1;
    }
    if (!page.IsTruncated || !page.Contents?.length) return { lines, objectsPerWindow: objects / Math.max(1, windows.size) };
    marker = page.Contents[page.Contents.length - 1]?.Key;
  }
}

// ---------------------------------------------------------------- scenarios

interface Scenario {
  name: string;
  input: keyof typeof SIZES;
  baseline: string | null;
  /** `null`: skipped (what it needs is missing: said on stderr). */
  run(prefix: string): Promise<Measured | null>;
  /** Lines expected in S3 under the run's prefix; `null` for baselines. */
  checked: boolean;
  /** A fan-out memory row: its `maxBufferedBytes` in MiB (RSS above the idle CLI of the same round is set against it plus FANOUT_ALLOWANCE_MIB). */
  budgetMiB?: number;
}

async function main(): Promise<void> {
  const inputs = {} as Record<keyof typeof SIZES, Input>;
  const kinds: Record<keyof typeof SIZES, InputKind> = { logs: 'logs', tiny: 'tiny', noise: 'noise', small: 'logs', large: 'logs', serve1k: 'logs', wide: 'wide' };
  for (const [name, bytes] of Object.entries(SIZES) as [keyof typeof SIZES, number][]) inputs[name] = await cachedInput(name, kinds[name], bytes);
  const empty = join(INPUT_DIR, 'empty.txt');
  writeFileSync(empty, '');

  const s3 = await startService('s3rver-process.ts', [BUCKET]);
  const endpoint = s3.info.endpoint as string;
  const port = s3.info.port as number;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const cli = (prefix: string, ...extra: string[]) => [join(root, 'dist', 'cli.js'), '--bucket', BUCKET, '--prefix', prefix, '--endpoint', endpoint, '--quiet', ...extra];
  const hasPigz = spawnSync('bash', ['-c', 'command -v pigz']).status === 0;
  /** A fresh spool directory for one run, removed after it (it must be empty: everything delivered). */
  const withSpoolDir = async <T>(run: (dir: string) => Promise<T>): Promise<T> => {
    const dir = mkdtempSync(join(tmpdir(), 's3-sink-bench-spool-'));
    try {
      const result = await run(dir);
      const left = readdirSync(dir).filter((name) => name !== 'dead');
      if (left.length > 0) throw new Error(`spool run left ${left.join(', ')} in ${dir}`);
      return result;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  /**
   * `s3-sink serve` with a spool (its own process, measured like the CLI runs),
   * and the load generator in another: `SERVE_CLIENTS` clients post the input
   * cut into bodies of `bodyBytes`, each answered once its events are durable.
   * The time is the load's (first request to last answer); the server's CPU
   * and RSS include its flush after SIGTERM.
   */
  const serveRun = (input: keyof typeof SIZES, bodyBytes: number) => (prefix: string) =>
    withSpoolDir(async (dir) => {
      const usageFile = join(tmpdir(), `s3-sink-bench-usage-${process.pid}-${Date.now()}.json`);
      const server = spawn(process.execPath, [...nodeArgs(), join(root, 'dist', 'cli.js'), 'serve', '--listen', '127.0.0.1:0', '--bucket', BUCKET, '--prefix', prefix, '--endpoint', endpoint, '--spool-dir', dir, '--quiet'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', S3SINK_BENCH_RUSAGE: usageFile },
      });
      let stderr = '';
      const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
      const url = await new Promise<string>((resolve, reject) => {
        server.stderr?.on('data', (chunk: Buffer) => {
          stderr += chunk;
          const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr);
          if (m) resolve(m[1] as string);
        });
        void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      const load = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', 'load.ts'), `${url}/v1/lines`, String(SERVE_CLIENTS), inputs[input].path, String(bodyBytes)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      server.kill('SIGTERM');
      const code = await exited;
      if (load.status !== 0) throw new Error(`load generator: ${load.stderr}`);
      if (code !== 0) throw new Error(`serve exited with ${code}: ${stderr}`);
      const result = JSON.parse(load.stdout) as { requests: number; seconds: number };
      const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as { cpuSeconds: number; mainCpuSeconds: number | null; maxRssBytes: number };
      rmSync(usageFile, { force: true });
      return { seconds: result.seconds, requests: result.requests, cpuSeconds: usage.cpuSeconds, mainCpuSeconds: usage.mainCpuSeconds, maxRssBytes: usage.maxRssBytes };
    });
  const gzipOf = (input: keyof typeof SIZES) => () => Promise.resolve(runShell(`gzip -6 -c < ${inputs[input].path} > /dev/null`));

  // The Kafka rows need a broker and the topic filled: only when they run.
  let kafka: KafkaBench | null | undefined;
  const kafkaRun = (workers: number) => async (prefix: string) => {
    kafka ??= await startKafkaBench(inputs.logs, { endpoint, bucket: BUCKET }, nodeArgs(), join(root, 'dist', 'cli.js'));
    if (kafka === null) return null;
    return kafka.run(workers, prefix);
  };

  const scenarios: Scenario[] = [
    { name: 'gzip -6', input: 'logs', baseline: null, checked: false, run: gzipOf('logs') },
    ...(hasPigz ? [{ name: `pigz -p ${cores} -6`, input: 'logs' as const, baseline: null, checked: false, run: () => Promise.resolve(runShell(`pigz -p ${cores} -6 -c < ${inputs.logs.path} > /dev/null`)) }] : []),
    { name: 'CLI, 1 destination', input: 'logs', baseline: 'gzip -6', checked: true, run: (p) => runNode(cli(p), inputs.logs.path) },
    // One zlib stream, and nothing else: what the sink's own compressor costs (its CPU is the one to compare).
    { name: 'node zlib -6 (one createGzip stream)', input: 'logs', baseline: null, checked: false, run: () => runNode(['-e', NODE_GZIP], inputs.logs.path) },
    // The default before parallel compression was: one compressor (one thread) per streaming batch.
    { name: 'CLI, 1 destination, --no-parallel-gzip', input: 'logs', baseline: 'node zlib -6 (one createGzip stream)', checked: true, run: (p) => runNode(cli(p, '--no-parallel-gzip'), inputs.logs.path) },
    // The durable spool: every line written to disk (fsync 'interval') before it is compressed, against the same CLI without it.
    // Event time: each line's ts read (in the pass that checks the line is JSON). The input's ts span 93 minutes of
    // 2026-01-01: with 60 s windows that is a backfill into 94 objects; with a day's window the batching of the plain CLI.
    { name: 'CLI, 1 destination, --time-field ts', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: (p) => runNode(cli(p, '--time-field', 'ts'), inputs.logs.path) },
    { name: 'CLI, 1 destination, --time-field ts --window 24h', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: (p) => runNode(cli(p, '--time-field', 'ts', '--window', '24h'), inputs.logs.path) },
    { name: 'CLI, 1 destination, --spool-dir', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: (p) => withSpoolDir((dir) => runNode(cli(p, '--spool-dir', dir), inputs.logs.path)) },
    { name: 'Kafka, 1 worker (6 partitions)', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: kafkaRun(1) },
    { name: 'Kafka, 2 workers (6 partitions)', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: kafkaRun(2) },
    // The same spool behind HTTP: requests of 1 KiB and 64 KiB from 16 clients, each answered once durable.
    { name: `serve, ${SERVE_CLIENTS} clients, 1 KiB bodies`, input: 'serve1k', baseline: 'CLI, 1 destination, --spool-dir', checked: true, run: serveRun('serve1k', 1024) },
    { name: `serve, ${SERVE_CLIENTS} clients, 64 KiB bodies`, input: 'logs', baseline: 'CLI, 1 destination, --spool-dir', checked: true, run: serveRun('logs', 64 * 1024) },
    { name: 'library, 1 destination', input: 'logs', baseline: 'gzip -6', checked: true, run: (p) => runNode([join(root, 'bench', 'lib-run.mjs'), inputs.logs.path, endpoint, BUCKET, p], inputs.logs.path) },
    { name: 'CLI, 8 destinations ({service})', input: 'logs', baseline: hasPigz ? `pigz -p ${cores} -6` : 'gzip -6', checked: true, run: (p) => runNode(cli(`${p}{service}/`), inputs.logs.path) },
    { name: 'CLI, 8 destinations ({service}), --time-field ts --window 24h', input: 'logs', baseline: 'CLI, 8 destinations ({service})', checked: true, run: (p) => runNode(cli(`${p}{service}/`, '--time-field', 'ts', '--window', '24h'), inputs.logs.path) },
    // Wide fan-out (issue 13): throughput against one destination of the same run (target 0.5), and objects per destination per window (target 1).
    { name: 'CLI, 1000 destinations ({tenant})', input: 'logs', baseline: 'CLI, 1 destination', checked: true, run: (p) => runNode(cli(`${p}{tenant}/`), inputs.logs.path) },
    // Memory at 10 000 destinations: RSS above an idle CLI (empty stdin, same round) against maxBufferedBytes + FANOUT_ALLOWANCE_MIB.
    { name: 'CLI, idle (empty stdin)', input: 'wide', baseline: null, checked: false, run: (p) => runNode(cli(p), empty) },
    ...[2, 8, 64].map((budgetMiB) => ({
      name: `CLI, 10000 destinations, --max-buffered ${budgetMiB}MiB`,
      input: 'wide' as const,
      baseline: 'CLI, idle (empty stdin)',
      checked: true,
      budgetMiB,
      run: (p: string) => runNode(cli(`${p}{tenant}/`, '--max-buffered', `${budgetMiB}MiB`), inputs.wide.path),
    })),
    { name: 'CLI, 1 destination, --parallel-gzip', input: 'logs', baseline: hasPigz ? `pigz -p ${cores} -6` : 'gzip -6', checked: true, run: (p) => runNode(cli(p, '--parallel-gzip'), inputs.logs.path) },
    { name: 'gzip -6, tiny lines', input: 'tiny', baseline: null, checked: false, run: gzipOf('tiny') },
    { name: 'CLI, tiny lines (50 B)', input: 'tiny', baseline: 'gzip -6, tiny lines', checked: true, run: (p) => runNode(cli(p), inputs.tiny.path) },
    { name: 'gzip -6, incompressible', input: 'noise', baseline: null, checked: false, run: gzipOf('noise') },
    { name: 'CLI, incompressible lines', input: 'noise', baseline: 'gzip -6, incompressible', checked: true, run: (p) => runNode(cli(p), inputs.noise.path) },
  ];

  const rows = new Map<string, Row>();
  let runId = 0;
  // With --only: the scenarios named, and the baselines they are measured against.
  const wanted = only === null ? scenarios : scenarios.filter((s) => only.some((text) => s.name.includes(text)));
  const chosen = only === null ? scenarios : scenarios.filter((s) => wanted.includes(s) || wanted.some((w) => w.baseline === s.name));
  const budgets = new Map(scenarios.filter((s) => s.budgetMiB !== undefined).map((s) => [s.name, s.budgetMiB as number]));
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of chosen) {
      const prefix = `r${round}/s${runId++}/`;
      process.stderr.write(`round ${round}/${rounds}: ${scenario.name} ... `);
      const measured = await scenario.run(prefix);
      if (measured === null) {
        process.stderr.write('skipped\n');
        continue;
      }
      process.stderr.write(`${measured.seconds.toFixed(2)} s\n`);
      const input = inputs[scenario.input];
      if (scenario.checked) {
        const { lines, objectsPerWindow } = await census(client, prefix);
        if (lines !== input.lines) throw new Error(`${scenario.name}: ${lines} lines in S3, ${input.lines} sent`);
        measured.objectsPerWindow = objectsPerWindow;
      }
      const row = rows.get(scenario.name) ?? { scenario: scenario.name, input: scenario.input, baseline: scenario.baseline, runs: [], bytes: input.bytes, lines: input.lines };
      row.runs.push(measured);
      rows.set(scenario.name, row);
    }
  }

  const memory = only === null || only.includes('memory') ? await memoryRuns() : null;

  // Memory: peak RSS above an idle CLI, flat in the input size, and with S3 throttled.
  async function memoryRuns() {
    process.stderr.write('memory runs ...\n');
    const idle = await runNode(cli('idle/'), empty);
    const small = await runNode(cli('mem-small/'), inputs.small.path);
    const large = await runNode(cli('mem-large/'), inputs.large.path);
    if ((await linesInS3(client, 'mem-large/')) !== inputs.large.lines) throw new Error('large run: lines in S3 differ from lines sent');
    const proxy = await startService('throttle-process.ts', [String(port), String(THROTTLE_BYTES_PER_SECOND)]);
    const throttledCli = [join(root, 'dist', 'cli.js'), '--bucket', BUCKET, '--prefix', 'throttled/', '--endpoint', proxy.info.endpoint as string, '--quiet'];
    const throttled = await runNode(throttledCli, inputs.logs.path);
    await proxy.stop();
    if ((await linesInS3(client, 'throttled/')) !== inputs.logs.lines) throw new Error('throttled run: lines in S3 differ from lines sent');
    return {
      idleRssMiB: (idle.maxRssBytes as number) / MiB,
      smallInputMiB: SIZES.small / MiB,
      smallPeakRssMiB: (small.maxRssBytes as number) / MiB,
      largeInputMiB: SIZES.large / MiB,
      largePeakRssMiB: (large.maxRssBytes as number) / MiB,
      largeOverSmall: (large.maxRssBytes as number) / (small.maxRssBytes as number),
      throttledBytesPerSecond: THROTTLE_BYTES_PER_SECOND,
      throttledSeconds: throttled.seconds,
      throttledPeakRssMiB: (throttled.maxRssBytes as number) / MiB,
      throttledAboveIdleMiB: ((throttled.maxRssBytes as number) - (idle.maxRssBytes as number)) / MiB,
    };
  }

  let profile: string | null = null;
  if (flags.profile) {
    process.stderr.write('profiling CLI, 1 destination ...\n');
    const dir = join(root, 'bench', 'results', `profile-${Date.now()}`);
    await runNode(['--cpu-prof', '--cpu-prof-dir', dir, ...cli('profile/')], inputs.logs.path);
    profile = summarizeProfile(dir, 20);
  }

  await kafka?.stop();
  client.destroy();
  await s3.stop();

  // ---------------------------------------------------------------- report
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
  const summary = [...rows.values()].map((row) => {
    const seconds = median(row.runs.map((r) => r.seconds));
    const cpu = row.runs.every((r) => r.cpuSeconds !== null) ? median(row.runs.map((r) => r.cpuSeconds as number)) : null;
    const mainCpu = row.runs.every((r) => r.mainCpuSeconds !== null) ? median(row.runs.map((r) => r.mainCpuSeconds as number)) : null;
    const rss = row.runs.every((r) => r.maxRssBytes !== null) ? median(row.runs.map((r) => r.maxRssBytes as number)) : null;
    const requests = row.runs[0]?.requests;
    const objectsPerWindow = row.runs.every((r) => r.objectsPerWindow !== undefined) ? median(row.runs.map((r) => r.objectsPerWindow as number)) : null;
    return { scenario: row.scenario, input: row.input, inputMiB: row.bytes / MiB, lines: row.lines, requestsPerSecond: requests === undefined ? null : requests / seconds, seconds, mibPerSecond: row.bytes / MiB / seconds, eventsPerSecond: row.lines / seconds, cpuSeconds: cpu, mainCpuSeconds: mainCpu, peakRssMiB: rss === null ? null : rss / MiB, objectsPerWindow, baseline: row.baseline, ratio: null as number | null };
  });
  for (const s of summary) {
    const base = summary.find((b) => b.scenario === s.baseline);
    if (base && !budgets.has(s.scenario)) s.ratio = s.mibPerSecond / base.mibPerSecond;
  }
  // Fan-out memory rows: the median over rounds of (peak RSS − the same round's idle CLI), against the budget plus the allowance.
  const idleRow = rows.get('CLI, idle (empty stdin)');
  const fanout = [...budgets]
    .filter(([name]) => rows.has(name) && idleRow)
    .map(([name, budgetMiB]) => {
      const runs = (rows.get(name) as Row).runs;
      const growth = median(runs.map((r, i) => ((r.maxRssBytes as number) - ((idleRow as Row).runs[i] ?? (idleRow as Row).runs[0])!.maxRssBytes!) / MiB));
      const bound = budgetMiB + FANOUT_ALLOWANCE_MIB;
      return { scenario: name, peakRssMiB: median(runs.map((r) => (r.maxRssBytes as number) / MiB)), idleRssMiB: median((idleRow as Row).runs.map((r) => (r.maxRssBytes as number) / MiB)), growthMiB: growth, boundMiB: bound, ratio: growth / bound, seconds: median(runs.map((r) => r.seconds)), objectsPerWindow: median(runs.map((r) => r.objectsPerWindow ?? NaN)) };
    });
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version, kernel: release() };

  const pad = (s: string, n: number) => s.padEnd(n);
  const num = (x: number | null, digits = 1) => (x === null ? '-' : x.toFixed(digits));
  const lines = [
    `s3-sink benchmark: ${machine.cpu}, ${cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}; ${rounds} round(s), medians; s3rver in its own process`,
    '',
    `| ${pad('scenario', 38)} | ${pad('input', 13)} | MiB/s | events/s  | CPU s | main thread CPU s | peak RSS MiB | baseline (same run)             | ratio |`,
    `|${'-'.repeat(40)}|${'-'.repeat(15)}|------:|----------:|------:|------------------:|-------------:|${'-'.repeat(33)}|------:|`,
    ...summary.filter((s) => s.scenario !== 'CLI, idle (empty stdin)').map(
      (s) =>
        `| ${pad(s.scenario, 38)} | ${pad(`${s.input} ${Math.round(s.inputMiB)} MiB`, 13)} | ${num(s.mibPerSecond).padStart(5)} | ${String(Math.round(s.eventsPerSecond)).padStart(9)} | ${num(s.cpuSeconds).padStart(5)} | ${num(s.mainCpuSeconds).padStart(17)} | ${num(s.peakRssMiB, 0).padStart(12)} | ${pad(s.baseline ?? '-', 31)} | ${s.ratio === null ? '    -' : num(s.ratio, 2).padStart(5)} |`,
    ),
    '',
    ...(fanout.length === 0
      ? []
      : [
          `fan-out memory (${inputs.wide.lines} lines, ${Math.round(inputs.wide.bytes / MiB)} MiB, among 10 000 destinations): peak RSS above the idle CLI of the same round, against maxBufferedBytes + ${FANOUT_ALLOWANCE_MIB} MiB (target: ratio at most 1)`,
          '',
          `| ${pad('scenario', 44)} | wall s | objects/destination/window | peak RSS MiB | idle MiB | growth MiB | bound MiB | ratio |`,
          `|${'-'.repeat(46)}|-------:|---------------------------:|-------------:|---------:|-----------:|----------:|------:|`,
          ...fanout.map((f) => `| ${pad(f.scenario, 44)} | ${num(f.seconds).padStart(6)} | ${num(f.objectsPerWindow, 2).padStart(26)} | ${num(f.peakRssMiB, 0).padStart(12)} | ${num(f.idleRssMiB, 0).padStart(8)} | ${num(f.growthMiB, 0).padStart(10)} | ${num(f.boundMiB, 0).padStart(9)} | ${num(f.ratio, 2).padStart(5)} |`),
          '',
        ]),
    ...summary.filter((s) => s.objectsPerWindow !== null && s.objectsPerWindow > 1.005 && !budgets.has(s.scenario)).map((s) => `${s.scenario}: ${num(s.objectsPerWindow, 2)} objects per destination per window`),
    ...(memory === null
      ? ['memory runs skipped (--only)']
      : [
          `memory: idle CLI ${num(memory.idleRssMiB, 0)} MiB; peak ${num(memory.smallPeakRssMiB, 0)} MiB over ${memory.smallInputMiB} MiB of input, ${num(memory.largePeakRssMiB, 0)} MiB over ${memory.largeInputMiB} MiB (×${num(memory.largeOverSmall, 2)});`,
          `        S3 throttled to ${THROTTLE_BYTES_PER_SECOND / 1e6} MB/s: peak ${num(memory.throttledPeakRssMiB, 0)} MiB, ${num(memory.throttledAboveIdleMiB, 0)} MiB above idle (${num(memory.throttledSeconds)} s)`,
        ]),
    ...summary.filter((s) => s.requestsPerSecond !== null).map((s) => `${s.scenario}: ${Math.round(s.requestsPerSecond as number)} requests/s, ${num(s.mibPerSecond)} MiB/s (${s.baseline}: ${num(summary.find((b) => b.scenario === s.baseline)?.mibPerSecond ?? null)} MiB/s)`),
    'every sink run checked: lines in S3 = lines sent',
  ];
  const report = lines.join('\n');
  process.stdout.write(`\n${report}\n`);
  if (profile) process.stdout.write(`\nwhere the time goes (CLI, 1 destination, self time):\n${profile}\n`);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  const file = join(root, 'bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine, rounds, quick, results: summary, fanout, memory, profile }, null, 2)}\n`);
  process.stdout.write(`\nwritten to ${file}\n`);
}

await main();
