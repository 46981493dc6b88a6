import test from 'ava';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdempotencyKeys, type Claim } from '../lib/serve/idempotency.js';

function run(claim: Claim): (status: number, body?: string) => void {
  if (claim.kind !== 'run') throw new Error(`expected to run, got ${claim.kind}`);
  return (status, body = '{"events":1}') => claim.finish({ status, body: status === 200 ? body : '' });
}

test('a key answered 200 is replayed until its ttl passes; one answered otherwise is free again; another body under it is a mismatch', async (t) => {
  let now = 1_000;
  const keys = new IdempotencyKeys({ ttlMs: 60_000, maxKeys: 10, file: null, now: () => now, warn: () => {} });
  run(keys.claim('a', 'h1'))(200);
  const again = keys.claim('a', 'h1');
  t.is(again.kind, 'replay');
  t.deepEqual(await (again as { outcome: Promise<unknown> }).outcome, { status: 200, body: '{"events":1}' });
  t.is(keys.claim('a', 'h2').kind, 'mismatch');
  run(keys.claim('b', 'h1'))(503);
  t.is(keys.claim('b', 'h1').kind, 'run', 'a 503 left nothing behind');
  now += 60_001;
  t.is(keys.claim('a', 'h1').kind, 'run', 'forgotten after its ttl');
});

test('a second claim while the first is under way waits for its answer', async (t) => {
  const keys = new IdempotencyKeys({ ttlMs: 60_000, maxKeys: 10, file: null, now: () => 0, warn: () => {} });
  const finish = run(keys.claim('k', 'h'));
  const waiting = keys.claim('k', 'h');
  t.is(waiting.kind, 'replay');
  finish(200, '{"events":7}');
  t.deepEqual(await (waiting as { outcome: Promise<unknown> }).outcome, { status: 200, body: '{"events":7}' });
});

test('at most maxKeys are kept, the oldest forgotten first', (t) => {
  const keys = new IdempotencyKeys({ ttlMs: 60_000, maxKeys: 3, file: null, now: () => 0, warn: () => {} });
  for (const k of ['a', 'b', 'c', 'd']) run(keys.claim(k, 'h'))(200);
  keys.claim('e', 'h');
  t.is(keys.claim('a', 'h').kind, 'run');
  t.is(keys.claim('d', 'h').kind, 'replay');
});

test('with a file, answered keys survive a restart (a torn last line and expired keys are dropped, the file compacted)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-idem-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'keys.ndjson');
  let now = 0;
  const first = new IdempotencyKeys({ ttlMs: 10_000, maxKeys: 100, file, now: () => now, warn: () => {} });
  run(first.claim('old', 'h'))(200);
  now = 5_000;
  run(first.claim('kept', 'h'))(200, '{"events":2}');
  first.claim('under-way', 'h'); // never answered: not written
  first.close();
  await appendFile(file, '{"k":"torn","h":"h","t":50');
  now = 12_000;
  const second = new IdempotencyKeys({ ttlMs: 10_000, maxKeys: 100, file, now: () => now, warn: () => {} });
  const kept = second.claim('kept', 'h');
  t.is(kept.kind, 'replay');
  t.deepEqual(await (kept as { outcome: Promise<unknown> }).outcome, { status: 200, body: '{"events":2}' });
  t.is(second.claim('old', 'h').kind, 'run', 'expired');
  t.is(second.claim('under-way', 'h').kind, 'run');
  t.is(second.claim('torn', 'h').kind, 'run');
  second.close();
  t.is((await readFile(file, 'utf8')).trim().split('\n').length, 1, 'compacted to the live key');
});
