import test from 'ava';
import { S3Client } from '@aws-sdk/client-s3';
import { sinkContext } from '../lib/context.js';
import type { Batch } from '../lib/batch.js';
import { upload } from '../lib/stages/upload.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const MiB = 1024 * 1024;

function batch(key: string, bytes: number): Batch {
  return { seq: 1, destination: { bucket: 'bucket', prefix: '' } as never, bucket: 'bucket', key, openedAt: 0, windowEnd: 0, events: 1, bytes, streaming: true };
}

type Cmd = { constructor: { name: string }; input: Record<string, unknown> };

/** A real client to s3rver whose `hook` runs after each answer (before the sink sees it). */
function hookedClient(hook: (name: string, output: unknown) => void | Promise<void>, stall: (name: string) => boolean = () => false) {
  const real = new S3Client({ maxAttempts: 1, ...env.s3.s3Config });
  const sent: string[] = [];
  const client = {
    config: real.config,
    async send(command: Cmd, options?: { abortSignal?: AbortSignal }) {
      const name = command.constructor.name.replace(/Command$/, '');
      sent.push(name);
      if (stall(name)) {
        await new Promise((_resolve, reject) => options?.abortSignal?.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true }));
      }
      const output = await real.send(command as never, options as never);
      await hook(name, output);
      return output;
    },
    destroy: () => real.destroy(),
  } as unknown as S3Client;
  return { client, sent };
}

test.serial('CreateMultipartUpload answering as the sink is destroyed: its upload is aborted, not left behind', async (t) => {
  let up: ReturnType<typeof upload> | null = null;
  const { client, sent } = hookedClient((name) => {
    // The answer is in; the sink is destroyed before the upload loop sees it.
    if (name === 'CreateMultipartUpload') up?.destroy(new Error('stopped'));
  });
  const ctx = sinkContext({ bucket: 'bucket', client, partSize: 5 * MiB, retry: { attempts: 1, baseMs: 1, capMs: 1 } });
  ctx.on('warning', () => {});
  up = upload(ctx);
  up.on('error', () => {});
  const b = batch('review/create-destroy.gz', 6 * MiB);
  up.write({ batch: b, data: Buffer.alloc(6 * MiB, 1) });
  await new Promise((resolve) => up!.on('close', resolve));
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.true(sent.includes('CreateMultipartUpload'));
  t.true(sent.includes('AbortMultipartUpload'), `AbortMultipartUpload sent: ${sent.join(',')}`);
  client.destroy();
});

test.serial('a write waiting for a part to go is called back when the sink is destroyed', async (t) => {
  const { client } = hookedClient(() => {}, (name) => name === 'UploadPart');
  const ctx = sinkContext({ bucket: 'bucket', client, partSize: 5 * MiB, queueSize: 1, retry: { attempts: 1, baseMs: 1, capMs: 1 }, requestTimeoutMs: 60_000 });
  ctx.on('warning', () => {});
  const up = upload(ctx);
  up.on('error', () => {});
  const b = batch('review/waiting-destroy.gz', 20 * MiB);
  up.write({ batch: b, data: Buffer.alloc(6 * MiB, 1) });
  let called = false;
  up.write({ batch: b, data: Buffer.alloc(6 * MiB, 2) }, () => (called = true));
  // Create, then part 1 in flight (stalled); the second write holds a whole part it cannot send.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.false(called, 'the write waits while part 1 is in flight');
  up.destroy();
  await new Promise((resolve) => up.on('close', resolve));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.true(called, 'the write callback was called after destroy');
  client.destroy();
});

test.serial('a failed upload of a batch still open frees the bytes of its cut-off parts from the budget at once, not at the batch end', async (t) => {
  // Part 1 is refused; parts 2 and 3 are in flight (stalled) and are cut off by the failure.
  const real = new S3Client({ maxAttempts: 1, ...env.s3.s3Config });
  const client = {
    config: real.config,
    async send(command: Cmd, options?: { abortSignal?: AbortSignal }) {
      const name = command.constructor.name.replace(/Command$/, '');
      if (name === 'UploadPart') {
        if (command.input.PartNumber === 1) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied', Code: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } });
        }
        await new Promise((_resolve, reject) => options?.abortSignal?.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true }));
      }
      return real.send(command as never, options as never);
    },
    destroy: () => real.destroy(),
  } as unknown as S3Client;
  const ctx = sinkContext({ bucket: 'bucket', client, partSize: 5 * MiB, queueSize: 4, maxBufferedBytes: 64 * MiB, retry: { attempts: 1, baseMs: 1, capMs: 1 } });
  ctx.on('warning', () => {});
  ctx.on('dead-letter', () => {});
  const up = upload(ctx);
  up.on('error', () => {});
  const b = batch('review/budget-cut-off.gz', 16 * MiB);
  ctx.ledger.charge(b, 16 * MiB);
  up.write({ batch: b, data: Buffer.alloc(16 * MiB, 3) });
  // The failure, its cut-off parts stopped, its multipart upload aborted (s3rver: 405): the batch is still open.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.is(ctx.ledger.heldBy(b), 0, 'nothing of the dropped bytes is held');
  t.is(ctx.ledger.draining(), 0, 'nothing counted as about to drain');
  up.end({ batch: b, end: true });
  await new Promise((resolve) => up.on('close', resolve));
  real.destroy();
});
