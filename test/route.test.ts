import test from 'ava';
import { SinkContext } from '../lib/context.js';
import { CACHE_KEY_CHARS, Router } from '../lib/route.js';
import type { Rejection } from '../lib/index.js';

function routerWithRejections() {
  const ctx = new SinkContext({ bucket: 'bucket', s3: { region: 'us-east-1' } });
  const rejected: Rejection[] = [];
  ctx.on('rejected', (r: Rejection) => rejected.push(r));
  return { ctx, router: new Router(ctx), rejected };
}

test('records with long invalid prefixes or buckets are each rejected, and the router keeps none of their text', (t) => {
  const { ctx, router, rejected } = routerWithRejections();
  t.teardown(() => ctx.dispose());
  for (let i = 0; i < 500; i++) {
    t.is(router.route({ prefix: `${i}/../${'x'.repeat(10_000)}/`, payload: { i } }), null);
    t.is(router.route({ bucket: `b${i}${'y'.repeat(10_000)}`, payload: { i } }), null);
  }
  t.is(rejected.length, 1000);
  t.true(rejected.filter((r) => r.code === 'ERR_S3SINK_RECORD').every((r) => /^record prefix "\d+\/\.\.\/x+" has a "\.\." segment$/.test(r.reason)));
  t.true(rejected.filter((r) => r.code === 'ERR_S3SINK_BUCKET').every((r) => /is not an S3 bucket name: 3 to 63 characters$/.test(r.reason)));
  t.deepEqual(router.kept, { prefixes: 0, buckets: 0 });
});

test('a long prefix that is valid once normalised is routed each time, not kept', (t) => {
  const { ctx, router } = routerWithRejections();
  t.teardown(() => ctx.dispose());
  const raw = `logs${'/'.repeat(CACHE_KEY_CHARS)}app/`;
  for (let i = 0; i < 3; i++) t.is(router.route({ prefix: raw, payload: { i } })?.destination.prefix, 'logs/app');
  t.is(router.kept.prefixes, 0);
});

test('prefixes kept across all buckets together stay within 4 096, and routing stays right across the clears', (t) => {
  const { ctx, router, rejected } = routerWithRejections();
  t.teardown(() => ctx.dispose());
  let most = 0;
  for (let round = 0; round < 2; round++) {
    for (let b = 0; b < 10; b++) {
      for (let p = 0; p < 1000; p++) {
        const routed = router.route({ bucket: `bucket-${b}`, prefix: `/tenant-${p}//`, payload: { b, p } });
        if (routed?.destination.bucket !== `bucket-${b}` || routed.destination.prefix !== `tenant-${p}`) t.fail(`bucket-${b} tenant-${p}: ${JSON.stringify(routed?.destination)}`);
        most = Math.max(most, router.kept.prefixes);
      }
    }
  }
  t.is(rejected.length, 0);
  t.is(most, 4096, 'filled up to the limit, never past it');
  t.is(router.kept.buckets, 10);
});
