import test from 'ava';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Transport } from '../lib/transport.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

test("a gate whose last check keeps saying no while its ask says yes does not spin: from the second lapse in a row it waits as for a retry; nothing reaches S3, and the abort ends it", async (t) => {
  const client = new S3Client({ ...env.s3.s3Config, maxAttempts: 1 });
  t.teardown(() => client.destroy());
  // Every wait the longest the policy allows (40 ms): 5 asks take at least 3 waits.
  const transport = new Transport(client, { attempts: 3, baseMs: 40, capMs: 40 }, 10_000, () => {}, () => 1);
  const abort = new AbortController();
  let asks = 0;
  let firstAsk = 0;
  const gate = {
    ask: async () => {
      if (++asks === 1) firstAsk = performance.now();
      if (asks === 5) abort.abort(new Error('enough'));
    },
    holds: () => false,
  };
  await t.throwsAsync(transport.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'spin', Body: 'x' }), abort.signal, gate), { message: 'enough' });
  t.is(asks, 5);
  t.true(performance.now() - firstAsk >= 3 * 40 - 1, 'three waits between the five asks');
  t.deepEqual(await env.s3.keys('bucket', 'spin'), []);
});

test('one lapse is asked again at once and then sent: the object is written once', async (t) => {
  const client = new S3Client({ ...env.s3.s3Config, maxAttempts: 1 });
  t.teardown(() => client.destroy());
  const transport = new Transport(client, { attempts: 3, baseMs: 60_000, capMs: 60_000 }, 10_000, () => {});
  let asks = 0;
  let checks = 0;
  await transport.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'once', Body: 'x' }), undefined, { ask: async () => void (asks += 1), holds: () => ++checks > 1 });
  t.deepEqual([asks, checks], [2, 2]);
  t.deepEqual(await env.s3.keys('bucket', 'once'), ['once']);
});

// With `cacheMiddleware: true` the SDK shares one request context among all
// requests of a command type, and concurrent requests to two buckets were
// built from each other's endpoint (README, "Why the SDK's cacheMiddleware is
// not used"). The SDK caches only a `send` without options: every request of
// the transport passes some (its signal), even on such a client given to it.
test("every request goes with options of its own, so a client's cacheMiddleware never applies", async (t) => {
  const client = new S3Client({ ...env.s3.s3Config, maxAttempts: 1, cacheMiddleware: true });
  t.teardown(() => client.destroy());
  const sent: unknown[] = [];
  const send = client.send.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { send: (...args: unknown[]) => Promise<unknown> }).send = (...args: unknown[]) => {
    sent.push(args[1]);
    return send(...args);
  };
  const transport = new Transport(client, { attempts: 1, baseMs: 1, capMs: 1 }, 10_000, () => {});
  await Promise.all(['a', 'b', 'c'].map((key) => transport.send(new PutObjectCommand({ Bucket: 'bucket', Key: `cached/${key}`, Body: key }))));
  t.is(sent.length, 3);
  for (const options of sent) t.true((options as { abortSignal?: unknown } | undefined)?.abortSignal instanceof AbortSignal);
  t.deepEqual(await env.s3.keys('bucket', 'cached/'), ['cached/a', 'cached/b', 'cached/c']);
});
