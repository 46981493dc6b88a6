import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { s3Sink } from '../lib/index.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket'], { bytesPerSecond: 2 * 1024 * 1024 });

test('destroy(err) cuts off a running multipart upload, aborts it, and the process exits by itself', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/destroy-child.ts', import.meta.url)), env.proxy.endpoint], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk));
  await eventually(() => env.proxy.log.some((l) => l.operation === 'UploadPart'), 'the first UploadPart to start', 30_000);
  child.stdin.end('stop\n');
  const exited = once(child, 'exit');
  const timeout = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code, signal] = (await exited) as [number | null, string | null];
  clearTimeout(timeout);
  t.is(signal, null, 'the child exited by itself, not killed after 15 s');
  t.is(code, 0);
  const report = JSON.parse(out.trim().split('\n').pop() ?? '{}');
  t.is(report.errorSeen, 'stopped by the test');
  t.deepEqual(report.resources, [], 'no timers, sockets or requests left');
  t.is(report.stats.bufferedBytes, 0);
  t.deepEqual(report.warnings, ['S3SINK_NO_ABORT'], 's3rver lacks AbortMultipartUpload: said once, to the listener');
  const ops = env.proxy.log.map((l) => l.operation);
  t.true(ops.includes('CreateMultipartUpload'));
  t.true(ops.includes('AbortMultipartUpload'), `AbortMultipartUpload was sent: ${ops.join(',')}`);
  t.false(ops.includes('CompleteMultipartUpload'));
});

test('after destroy(err), nothing counts as buffered: not even a batch that never reached the upload stage', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'never/', input: 'lines', s3: env.s3.s3Config });
  const errors: string[] = [];
  sink.on('error', (err) => errors.push(err.message));
  sink.write('one line held by gzip until its batch ends\n');
  await eventually(() => sink.stats().bufferedBytes > 0, 'the line to be admitted');
  const closed = new Promise((resolve) => sink.once('close', resolve));
  sink.destroy(new Error('stopped'));
  await closed;
  t.deepEqual(errors, ['stopped']);
  t.is(sink.stats().bufferedBytes, 0);
});
