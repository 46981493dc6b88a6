import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli } from './helpers/cli.js';
import { useLocalS3 } from './helpers/s3.js';
import { post, startServeCli } from './helpers/serve.js';

const env = useLocalS3(test, ['bucket']);

async function tempDir(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-serve-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('usage errors exit 2 with one line: no spool for durable acks, a non-loopback address without a token, flags that do not go with serve', async (t) => {
  const cases: [string[], RegExp][] = [
    [['serve', '--bucket', 'b'], /^s3-sink: serve answers once events are durable in a spool: give --spool-dir DIR \(or --ack delivered/],
    [['serve', '--bucket', 'b', '--ack', 'delivered', '--listen', '0.0.0.0:8080'], /^s3-sink: --listen 0\.0\.0\.0:8080: not a loopback address, and no --token-file/],
    [['serve', '--bucket', 'b', '--ack', 'soon'], /^s3-sink: --ack: "soon" is not durable or delivered/],
    [['serve', '--bucket', 'b', '--ack', 'delivered', '--metrics-listen', '9464'], /^s3-sink: --metrics-listen does not go with serve/],
    [['serve', '--bucket', 'b', '--ack', 'delivered', '--listen', 'nowhere'], /^s3-sink: --listen: "nowhere" is not PORT, HOST:PORT/],
    [['--bucket', 'b', '--listen', '8080'], /^s3-sink: --listen goes with the serve command/],
    [['serve', '--bucket', 'b', '--ack', 'delivered', '--token-file', '/no/such/file'], /^s3-sink: --token-file: cannot read \/no\/such\/file/],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await runCli(args);
    t.is(code, 2, args.join(' '));
    t.regex(stderr, message, args.join(' '));
    t.is(stderr.trim().split('\n').length, 1, args.join(' '));
  }
});

test('SIGTERM: requests under way are answered 200, everything is flushed to S3, exit 0; no request body ever reaches stderr (good, malformed, unrouted, refused)', async (t) => {
  const dir = await tempDir(t);
  const { run, url } = await startServeCli(['--bucket', 'bucket', '--prefix', 'term/{app}/', '--spool-dir', dir, '--endpoint', env.s3.endpoint]);
  const SECRET = 'hunter2-secret-marker';
  t.like(await post(`${url}/v1/lines`, `{"app":"a","n":0,"s":"${SECRET}"}\n${SECRET} not json\n`), { status: 200, body: { unrouted: 1 } });
  t.like(await post(`${url}/v1/send`, `[{"payload":{"app":"a","n":1}},{"payload":"${SECRET}",}]`), { status: 400 });
  t.like(await post(`${url}/v1/send`, `[{"payload":{"app":"a"}, "${SECRET}": 1}]`), { status: 400 });
  const under = Array.from({ length: 6 }, (_, i) => post(`${url}/v1/lines`, gzipSync(`{"app":"b","n":${10 + i},"s":"${SECRET}"}\n`), { 'content-encoding': 'gzip' }));
  run.child.kill('SIGTERM');
  const answers = await Promise.all(under.map((p) => p.catch(() => null)));
  const { code } = await run.exit;
  t.is(code, 0);
  t.regex(run.stderr(), /SIGTERM: no new requests; answering those under way, then flushing/);
  t.false(run.stderr().includes(SECRET), 'no body in the log');
  t.false(run.stdout().includes(SECRET));
  // Those the server had before the signal were answered 200 and are in S3; any it had not were refused (connection closed), never half-taken.
  const taken = answers.filter((a) => a?.status === 200).length;
  const seen = await env.s3.countEvents('bucket', 'term/b/');
  t.is(seen.size, taken);
  t.is((await env.s3.countEvents('bucket', 'term/a/')).size, 1);
});

test('with --token-file it listens on 0.0.0.0 and takes only requests with the token (read from the file, its newline ignored)', async (t) => {
  const dir = await tempDir(t);
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'correct-horse-battery-staple\n');
  const { run, url } = await startServeCli(['--bucket', 'bucket', '--prefix', 'tokenfile/', '--spool-dir', join(dir, 'spool'), '--endpoint', env.s3.endpoint, '--token-file', tokenFile, '--listen', '0.0.0.0:0']);
  t.teardown(() => void run.child.kill('SIGKILL'));
  t.is((await post(`${url}/v1/lines`, '{"n":1}\n')).status, 401);
  t.is((await post(`${url}/v1/lines`, '{"n":1}\n', { authorization: 'Bearer correct-horse-battery-staple' })).status, 200);
  run.child.kill('SIGTERM');
  t.like(await run.exit, { code: 0 });
});
