import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
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
