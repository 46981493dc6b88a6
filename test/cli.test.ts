import test from 'ava';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseCommand, UsageError, type RunCommand } from '../lib/cli/args.js';
import { parseKey } from '../lib/key.js';
import { runCli, runCliOn, startCli } from './helpers/cli.js';
import { noisyLine, prng } from './helpers/data.js';
import { startProxy } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket']);
const WARNING = 'NodeVersionSupportWarning';

test('parallel compression is the default; --no-parallel-gzip turns it off, --parallel-gzip is still accepted, both at once are refused', (t) => {
  const sink = (...flags: string[]) => (parseCommand(['--bucket', 'b', ...flags]) as RunCommand).sink;
  t.is(sink().parallelGzip, undefined, 'left to the library default');
  t.is(sink('--no-parallel-gzip').parallelGzip, false);
  t.is(sink('--parallel-gzip').parallelGzip, true);
  t.throws(() => sink('--parallel-gzip', '--no-parallel-gzip'), { instanceOf: UsageError, message: '--parallel-gzip and --no-parallel-gzip: name one' });
});

/** The lines of every object under `prefix`, per object (key order). */
async function objectsUnder(prefix: string): Promise<{ key: string; lines: string[] }[]> {
  const keys = (await env.s3.keys('bucket', prefix)).sort();
  return Promise.all(keys.map(async (key) => ({ key, lines: await env.s3.lines('bucket', key) })));
}

/** Events reported in the CLI's `wrote ... (N events, ...)` lines. */
function eventsWritten(stderr: string): number {
  return [...stderr.matchAll(/wrote s3:\/\/\S+ \((\d+) events/g)].reduce((n, m) => n + Number(m[1]), 0);
}

test('unknown flags, a missing bucket and a bad duration exit 2 with a message naming them', async (t) => {
  const unknown = await runCli(['--bucket', 'bucket', '--frobnicate']);
  t.is(unknown.code, 2);
  t.is(unknown.stderr, 's3-sink: unknown flag --frobnicate (see s3-sink --help)\n');
  const missing = await runCli(['--prefix', 'x/']);
  t.is(missing.code, 2);
  t.is(missing.stderr, 's3-sink: missing --bucket NAME (the bucket to write to)\n');
  const duration = await runCli(['--bucket', 'bucket', '--window', '5 minutes']);
  t.is(duration.code, 2);
  t.is(duration.stderr, 's3-sink: --window: "5 minutes" is not a duration (like 500ms, 30s, 1m, 1h)\n');
  const part = await runCli(['--bucket', 'bucket', '--part-size', '1MiB']);
  t.is(part.code, 2);
  t.is(part.stderr, 's3-sink: --part-size: got 1048576, expected an integer from 5242880 to 5368709120\n');
  const sweep = await runCli(['--bucket', 'bucket', '--window', '1h', '--sweep-orphans', '10m']);
  t.is(sweep.code, 2);
  t.regex(sweep.stderr, /^s3-sink: --sweep-orphans: got 600000, expected at least 9261600 \(155m\): an upload of a sink with these settings can be live that long \(.+\)\n$/);
  t.is(unknown.stdout + missing.stdout + duration.stdout, '', 'stdout stays clean');
});

test('policy prints a bucket policy with exactly the five actions on both resources', async (t) => {
  const { code, stdout, stderr } = await runCli(['policy', '--bucket', 'logs', '--principal', 'arn:aws:iam::123456789012:role/shipper']);
  t.is(code, 0);
  t.is(stderr, '');
  const policy = JSON.parse(stdout) as { Version: string; Statement: { Effect: string; Principal: { AWS: string }; Action: string[]; Resource: string }[] };
  t.is(policy.Version, '2012-10-17');
  const actions = policy.Statement.flatMap((s) => s.Action).sort();
  t.deepEqual(actions, ['s3:AbortMultipartUpload', 's3:GetBucketLocation', 's3:ListBucketMultipartUploads', 's3:PutObject', 's3:PutObjectAcl']);
  t.deepEqual(policy.Statement.map((s) => s.Resource).sort(), ['arn:aws:s3:::logs', 'arn:aws:s3:::logs/*']);
  for (const s of policy.Statement) {
    t.is(s.Effect, 'Allow');
    t.is(s.Principal.AWS, 'arn:aws:iam::123456789012:role/shipper');
  }
  const missing = await runCli(['policy', '--bucket', 'logs']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /missing --principal ARN/);
});

test('policy refuses a wildcard, an invalid bucket name and a principal that is not an IAM principal, and takes its partition from the region, the flag or the principal', async (t) => {
  const ROLE = 'arn:aws:iam::123456789012:role/shipper';
  for (const [args, message] of [
    [['--bucket', 'logs', '--principal', '*'], '--principal: "*" is a wildcard: it would let anyone write to the bucket; name the role or user that runs s3-sink'],
    [['--bucket', 'logs', '--principal', 'arn:aws:iam::123456789012:role/*'], '--principal: "arn:aws:iam::123456789012:role/*" is a wildcard: it would let anyone write to the bucket; name the role or user that runs s3-sink'],
    [['--bucket', '*', '--principal', ROLE], '--bucket: "*" is not an S3 bucket name (3 to 63 characters)'],
    [['--bucket', 'Logs_2026', '--principal', ROLE], '--bucket: "Logs_2026" is not an S3 bucket name (lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)'],
    [['--bucket', 'xn--logs', '--principal', ROLE], '--bucket: "xn--logs" is not an S3 bucket name (not starting with xn-- (reserved by AWS))'],
    [['--bucket', 'logs', '--principal', 'shipper'], '--principal: "shipper" is not an IAM principal (an account id, or an ARN like arn:aws:iam::123456789012:role/shipper)'],
    [['--bucket', 'logs', '--principal', 'arn:aws:s3:::other'], '--principal: "arn:aws:s3:::other" is not an IAM principal (an account id, or an ARN like arn:aws:iam::123456789012:role/shipper)'],
    [['--bucket', 'logs', '--principal', ROLE, '--region', 'cn-north-1'], '--principal arn:aws:iam::123456789012:role/shipper is in partition aws, the bucket\'s ARNs in aws-cn'],
    [['--bucket', 'logs', '--principal', ROLE, '--partition', 'mars'], '--partition: "mars" is not an AWS partition (aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws)'],
    [['--bucket', 'logs', '--principal', ROLE, '--region', 'moon'], '--region: "moon" is not an AWS region (like us-east-1, cn-north-1, us-gov-west-1)'],
  ] as const) {
    const refused = await runCli(['policy', ...args]);
    t.is(refused.code, 2, args.join(' '));
    t.is(refused.stderr, `s3-sink: ${message}\n`);
    t.is(refused.stdout, '');
  }
  const resources = async (args: string[]) => {
    const { code, stdout, stderr } = await runCli(['policy', '--bucket', 'logs', ...args]);
    t.is(code, 0, stderr);
    return (JSON.parse(stdout) as { Statement: { Resource: string }[] }).Statement.map((s) => s.Resource).sort();
  };
  t.deepEqual(await resources(['--principal', 'arn:aws-cn:iam::123456789012:role/shipper', '--region', 'cn-northwest-1']), ['arn:aws-cn:s3:::logs', 'arn:aws-cn:s3:::logs/*']);
  t.deepEqual(await resources(['--principal', 'arn:aws-us-gov:iam::123456789012:role/shipper']), ['arn:aws-us-gov:s3:::logs', 'arn:aws-us-gov:s3:::logs/*']);
  t.deepEqual(await resources(['--principal', '123456789012', '--partition', 'aws-cn']), ['arn:aws-cn:s3:::logs', 'arn:aws-cn:s3:::logs/*']);
  t.deepEqual(await resources(['--principal', '123456789012']), ['arn:aws:s3:::logs', 'arn:aws:s3:::logs/*']);
});

test('usage of s3-sink kafka: brokers, topic and group are required and checked; Kafka flags go with the kafka command only', async (t) => {
  const cases: [string[], string][] = [
    [['kafka', '--bucket', 'bucket', '--topic', 't', '--group', 'g'], 's3-sink: missing --brokers HOST:PORT[,HOST:PORT] (where the Kafka cluster is)\n'],
    [['kafka', '--bucket', 'bucket', '--brokers', 'kafka', '--topic', 't', '--group', 'g'], 's3-sink: --brokers: "kafka" is not HOST:PORT\n'],
    [['kafka', '--bucket', 'bucket', '--brokers', 'k:9092', '--group', 'g'], 's3-sink: missing --topic T (the topic to read)\n'],
    [['kafka', '--bucket', 'bucket', '--brokers', 'k:9092', '--topic', 't'], 's3-sink: missing --group G (the consumer group the workers share)\n'],
    [['kafka', '--bucket', 'bucket', '--brokers', 'k:9092', '--topic', 't', '--group', 'g', '--idle', 'soon'], 's3-sink: --idle: "soon" is not a duration (like 500ms, 30s, 1m, 1h)\n'],
    [['--bucket', 'bucket', '--topic', 't'], 's3-sink: --topic goes with the kafka command\n'],
  ];
  for (const [args, stderr] of cases) {
    const run = await runCli(args);
    t.is(run.code, 2, args.join(' '));
    t.is(run.stderr, stderr);
  }
});

test('usage: a flag given twice is refused, naming both values; --max-object-size 1 is reported as --max-object-size', async (t) => {
  const twice = await runCli(['--bucket', 'a-bucket', '--bucket', 'b-bucket']);
  t.is(twice.code, 2);
  t.is(twice.stderr, 's3-sink: --bucket is given twice ("a-bucket", then "b-bucket"): name it once\n');
  const quiet = await runCli(['demo', '-q', '--quiet']);
  t.is(quiet.code, 2);
  t.is(quiet.stderr, 's3-sink: --quiet is given twice: name it once\n');
  const tiny = await runCli(['--bucket', 'bucket', '--max-object-size', '1']);
  t.is(tiny.code, 2);
  t.regex(tiny.stderr, /^s3-sink: --max-object-size: got 1, expected an integer from 2 to \d+\n$/);
});

test('--help and --version print to stdout and exit 0', async (t) => {
  const help = await runCli(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /s3-sink --bucket NAME \[--prefix P\]/);
  const version = await runCli(['--version']);
  const { version: expected } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(version.stdout, `s3-sink ${expected}\n`);
});

test('demo runs on an embedded S3, prints keys in the object format, exits 0, and hides the SDK\'s Node warning', async (t) => {
  const { code, stdout, stderr } = await runCli(['demo']);
  t.is(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 3);
  for (const line of lines) {
    const [url, events] = line.split('\t');
    const key = url!.replace(/^s3:\/\/demo-bucket\//, '');
    t.regex(key, /^app\/(api|billing|search)\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f]{64}\.gz$/);
    t.not(parseKey(key), null);
    t.is(events, '10000 events');
  }
  t.false(stderr.includes(WARNING), stderr);
  t.regex(stderr, /s3-sink: done: 30000 events in 3 objects/);
});

test('demo with a reader that goes away (demo | true): no stack trace, its temporary folder removed, exit 0', async (t) => {
  const temp = await mkdtemp(join(tmpdir(), 's3-sink-cli-epipe-'));
  t.teardown(() => rm(temp, { recursive: true, force: true }));
  const run = startCli(['demo'], { TMPDIR: temp });
  run.child.stdout.destroy(); // the reader is gone before the demo prints its keys
  const { code } = await run.exit;
  const stderr = run.stderr();
  t.is(code, 0, stderr);
  t.regex(stderr, /s3-sink: done: 30000 events in 3 objects/);
  t.false(/EPIPE|Error|\n\s+at /.test(stderr), stderr);
  t.deepEqual(await readdir(temp), [], 'the embedded S3\'s folder is gone');
});

test('100 000 JSON lines through a templated prefix land in the right prefixes, in order; lines without the field go to the dead-letter prefix', async (t) => {
  const services = ['api', 'web', 'jobs', 'auth', 'mail'];
  const expected = new Map<string, string[]>();
  let input = '';
  for (let n = 0; n < 100_000; n++) {
    let line: string;
    let prefix: string;
    if (n % 10_000 === 5) {
      line = `not json ${n}`;
      prefix = '_unrouted';
    } else if (n % 10_000 === 7) {
      line = JSON.stringify({ n, msg: 'no service field' });
      prefix = '_unrouted';
    } else {
      const service = services[n % services.length]!;
      line = JSON.stringify({ service, n, msg: `event ${n} from ${service}` });
      prefix = `app/${service}`;
    }
    input += `${line}\n`;
    expected.set(prefix, [...(expected.get(prefix) ?? []), line]);
  }
  const { code, stderr, stdout } = await runCli(['--bucket', 'bucket', '--prefix', 'app/{service}/', '--endpoint', env.s3.endpoint, '--window', '1h'], input);
  t.is(code, 0, stderr);
  t.is(stdout, '');
  t.false(stderr.includes(WARNING));
  t.regex(stderr, /s3-sink: done: 100000 events in \d+ objects.*; 20 to the dead-letter prefix\n$/);
  let total = 0;
  for (const [prefix, lines] of expected) {
    const objects = await objectsUnder(`${prefix}/`);
    t.true(objects.length >= 1, prefix);
    for (const o of objects) t.is(parseKey(o.key)?.prefix, prefix);
    t.deepEqual(objects.flatMap((o) => o.lines), lines, `${prefix}: every line, in order`);
    total += lines.length;
  }
  t.is(total, 100_000);
});

test('SIGTERM with stdin still open: everything read is delivered, an unfinished line is reported, exit 0', async (t) => {
  const run = startCli(['--bucket', 'bucket', '--prefix', 'term/', '--endpoint', env.s3.endpoint, '--window', '200ms']);
  const LINES = 20_000;
  let body = '';
  for (let n = 0; n < LINES; n++) body += `${JSON.stringify({ n })}\n`;
  run.child.stdin.write(body);
  // One small write (atomic in the pipe): a last whole line and the start of another.
  run.child.stdin.write(`${JSON.stringify({ n: LINES })}\n{"n":"unfinish`);
  await eventually(() => eventsWritten(run.stderr()) === LINES + 1, 'every whole line to be delivered', 30_000);
  run.child.kill('SIGTERM');
  const { code } = await run.exit;
  const stderr = run.stderr();
  t.is(code, 0, stderr);
  t.regex(stderr, /s3-sink: SIGTERM: stopped reading stdin; flushing \d+ open batches/);
  t.regex(stderr, /s3-sink: input stopped inside a line: its first 14 bytes were read and not delivered\n/);
  t.regex(stderr, new RegExp(`s3-sink: done: ${LINES + 1} events in \\d+ objects`));
  const seen: number[] = [];
  for (const o of await objectsUnder('term/')) {
    const ns = o.lines.map((l) => (JSON.parse(l) as { n: number }).n);
    t.deepEqual(ns, [...ns].sort((a, b) => a - b), `${o.key} is in order`);
    seen.push(...ns);
  }
  t.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: LINES + 1 }, (_, i) => i));
});

test('a second signal leaves at once with a non-zero code, saying what was not delivered', async (t) => {
  const proxy = await startProxy(env.s3.port, { bytesPerSecond: 256 * 1024 });
  try {
    // Objects of at most 1 MiB: uploads start while stdin is still being read.
    const run = startCli(['--bucket', 'bucket', '--prefix', 'hard/', '--endpoint', proxy.endpoint, '--gzip-level', '1', '--no-check', '--max-object-size', '1MiB']);
    const random = prng(9);
    const noise = Array.from({ length: 64 }, () => noisyLine(random, 1000));
    run.child.stdin.on('error', () => {});
    run.child.stdin.write(Array.from({ length: 4096 }, (_, i) => `${i} ${noise[i % 64]}\n`).join(''));
    // Keep stdin open; once uploads are going, ask it to stop...
    await eventually(() => proxy.log.some((l) => l.operation === 'PutObject'), 'the first upload to start', 30_000);
    run.child.kill('SIGTERM');
    await eventually(() => run.stderr().includes('stopped reading stdin'), 'the first signal to be taken');
    // ...and, while the slow upload goes on, insist.
    const second = Date.now();
    run.child.kill('SIGTERM');
    const { code } = await run.exit;
    t.is(code, 143);
    t.true(Date.now() - second < 5_000, 'left at once');
    t.regex(run.stderr(), /s3-sink: SIGTERM again: leaving now; not delivered: [1-9]\d* of [1-9]\d* events read/);
  } finally {
    await proxy.close();
  }
});

test('a bucket that does not exist: exit 1 at once with the S3 error; with --no-check, when the upload fails', async (t) => {
  const checked = await runCli(['--bucket', 'no-such-bucket', '--endpoint', env.s3.endpoint], 'a\nb\n');
  t.is(checked.code, 1);
  t.regex(checked.stderr, /^s3-sink: cannot write to bucket no-such-bucket: NoSuchBucket: .+\n$/);
  const unchecked = await runCli(['--bucket', 'no-such-bucket', '--endpoint', env.s3.endpoint, '--no-check', '--quiet'], 'a\nb\nc\n');
  t.is(unchecked.code, 1);
  t.regex(unchecked.stderr, /s3-sink: delivery failed: upload of s3:\/\/no-such-bucket\/\S+\.gz failed: NoSuchBucket: /);
  t.regex(unchecked.stderr, /s3-sink: not delivered: 3 of 3 events read/);
  // A line rejected (too long) and one in the failed upload: both were read, neither delivered.
  const rejected = await runCli(['--bucket', 'no-such-bucket', '--endpoint', env.s3.endpoint, '--no-check', '--quiet', '--max-line', '10'], `${'x'.repeat(50)}\nb\n`);
  t.is(rejected.code, 1);
  t.regex(rejected.stderr, /s3-sink: not delivered: 2 of 2 events read \(1 rejected, 1 in batches given up on with nowhere to keep them, 0 batches open, 0 B buffered, 0 uploads cut off\)\n/);
  t.false(unchecked.stderr.includes('S3RVER'), 'credentials are never printed');
});

test('credentials: none found, or refused by S3, exit 1 with a line that says where they come from', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 's3-sink-cli-home-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const nowhere = { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', HOME: home, AWS_CONFIG_FILE: join(home, 'config'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'), AWS_EC2_METADATA_DISABLED: 'true' };
  const none = await runCli(['--bucket', 'bucket', '--endpoint', env.s3.endpoint], 'a\n', nowhere);
  t.is(none.code, 1);
  t.regex(none.stderr, /^s3-sink: no AWS credentials found \(Could not load credentials from any providers\): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE .+\n$/);
  const refused = await runCli(['--bucket', 'bucket', '--endpoint', env.s3.endpoint], 'a\n', { AWS_ACCESS_KEY_ID: 'NOT-S3RVER' });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^s3-sink: S3 refused the credentials for bucket bucket: InvalidAccessKeyId: .+ \(they come from the AWS SDK's default chain: set AWS_ACCESS_KEY_ID .+\)\n$/);
  t.false(/no-check/.test(none.stderr + refused.stderr));
});

test('the start-up check answers within seconds, naming the endpoint, against a store that accepts connections and never answers', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const started = performance.now();
  const { code, stderr } = await runCli(['--bucket', 'bucket', '--endpoint', endpoint], 'a\n');
  const seconds = (performance.now() - started) / 1000;
  t.is(code, 1);
  t.is(stderr, `s3-sink: cannot reach ${endpoint} to check bucket bucket: no answer within 10 s (3 attempts of GetBucketLocation)\n`);
  // The message names the check's own 10 s deadline; the bound only catches a hang past it (SDK timeouts are minutes).
  // It is wide: the time includes starting the CLI, beside the file's other CLIs and npm test's Kafka brokers.
  t.true(seconds < 60, `answered in ${seconds.toFixed(1)} s`);
  t.true(sockets.length >= 2, 'it tried again, on a new connection');
});

test('the start-up check against a port with nothing listening answers at once, naming the endpoint and the refusal', async (t) => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const { code, stderr } = await runCli(['--bucket', 'bucket', '--endpoint', endpoint], 'a\n');
  t.is(code, 1);
  // The refusal itself, after the check's attempts: not its 10 s deadline for a silent store (no wall-clock bound:
  // the time includes starting the CLI beside the file's other CLIs, and took 11 s once on a loaded machine).
  t.regex(stderr, new RegExp(`^s3-sink: cannot reach ${endpoint.replace(/\./g, '\\.')} to check bucket bucket: ECONNREFUSED: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+ \\(3 attempts\\)\n$`));
});

test('--dead-letter-dir: a batch S3 refuses is written there with its sidecar, the rest is delivered, and the run exits 1 saying so', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-cli-dead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const input = `${JSON.stringify({ dest: 'ok', n: 1 })}\n${JSON.stringify({ dest: 'ok', n: 2 })}\n`;
  const { code, stderr } = await runCli(['--bucket', 'no-such-bucket', '--prefix', 'p/', '--endpoint', env.s3.endpoint, '--no-check', '--dead-letter-dir', dir], input);
  t.is(code, 1);
  const match = /s3-sink: dead letter: s3:\/\/no-such-bucket\/(p\/\S+\.gz) \(2 events\) written to (\S+): NoSuchBucket\n/.exec(stderr);
  t.truthy(match, stderr);
  t.is(match![2], join(dir, 'no-such-bucket', ...match![1]!.split('/')));
  t.is(gunzipSync(await readFile(match![2]!)).toString(), input);
  t.regex(stderr, /; 2 events in 1 dead letters on disk\n/);
  t.regex(stderr, new RegExp(`s3-sink: 1 batches could not be delivered and are in ${dir}\n`));
});

test('the README\'s log shipper examples: Vector\'s and Fluent Bit\'s JSON lines fan out by their fields', async (t) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const vectorArgs = ['--bucket', 'bucket', '--prefix', 'vector/{host}/'];
  const fluentArgs = ['--bucket', 'bucket', '--prefix', 'k8s/{kubernetes.namespace_name}/'];
  t.true(readme.includes(`vector --config vector.yaml | s3-sink ${vectorArgs.join(' ').replace('vector/{host}/', "'vector/{host}/'")}`), 'the README shows the Vector command');
  t.true(readme.includes(`fluent-bit -q -c fluent-bit.conf | s3-sink ${fluentArgs.join(' ').replace('k8s/{kubernetes.namespace_name}/', "'k8s/{kubernetes.namespace_name}/'")}`), 'the README shows the Fluent Bit command');

  // What Vector's console sink writes with `encoding.codec: json`.
  const vectorOut = [
    { file: '/var/log/app/a.log', host: 'web-1', message: 'GET / 200', source_type: 'file', timestamp: '2026-01-01T00:00:00.000000001Z' },
    { file: '/var/log/app/a.log', host: 'web-2', message: 'GET /health 200', source_type: 'file', timestamp: '2026-01-01T00:00:00.100000001Z' },
    { file: '/var/log/app/b.log', host: 'web-1', message: 'POST /login 302', source_type: 'file', timestamp: '2026-01-01T00:00:00.200000001Z' },
  ].map((e) => JSON.stringify(e));
  const vector = await runCli([...vectorArgs, '--endpoint', env.s3.endpoint], `${vectorOut.join('\n')}\n`);
  t.is(vector.code, 0, vector.stderr);
  t.deepEqual((await objectsUnder('vector/web-1/')).flatMap((o) => o.lines), [vectorOut[0], vectorOut[2]]);
  t.deepEqual((await objectsUnder('vector/web-2/')).flatMap((o) => o.lines), [vectorOut[1]]);

  // What Fluent Bit's stdout output writes with `Format json_lines`.
  const fluentOut = [
    { date: '2026-01-01T00:00:00.000000Z', log: 'started', stream: 'stdout', kubernetes: { namespace_name: 'prod', pod_name: 'api-1' } },
    { date: '2026-01-01T00:00:01.000000Z', log: 'debug noise', stream: 'stderr', kubernetes: { namespace_name: 'staging', pod_name: 'api-2' } },
  ].map((e) => JSON.stringify(e));
  const fluent = await runCli([...fluentArgs, '--endpoint', env.s3.endpoint], `${fluentOut.join('\n')}\n`);
  t.is(fluent.code, 0, fluent.stderr);
  t.deepEqual((await objectsUnder('k8s/prod/')).flatMap((o) => o.lines), [fluentOut[0]]);
  t.deepEqual((await objectsUnder('k8s/staging/')).flatMap((o) => o.lines), [fluentOut[1]]);
});

test('a stdin that fails to read (a directory) exits 1 naming the read error; a file on stdin is read to its end', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-cli-stdin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const directory = await open(dir, 'r');
  t.teardown(() => directory.close());
  const failed = await runCliOn(directory.fd, ['--bucket', 'bucket', '--prefix', 'stdin-dir/', '--endpoint', env.s3.endpoint]);
  t.is(failed.code, 1, failed.stderr);
  t.regex(failed.stderr, /\ns3-sink: cannot read stdin: EISDIR: illegal operation on a directory, read\n$/);
  t.deepEqual(await env.s3.keys('bucket', 'stdin-dir/'), []);

  await writeFile(join(dir, 'events'), 'one\ntwo\nlast, without a line end');
  const file = await open(join(dir, 'events'), 'r');
  t.teardown(() => file.close());
  const read = await runCliOn(file.fd, ['--bucket', 'bucket', '--prefix', 'stdin-file/', '--endpoint', env.s3.endpoint]);
  t.is(read.code, 0, read.stderr);
  t.deepEqual((await objectsUnder('stdin-file/')).flatMap((o) => o.lines), ['one', 'two', 'last, without a line end']);
});
