import test from 'ava';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { gzip, join, keyBy, parse, sinkContext, window, type Batch, type BytesPiece, type End } from '../lib/index.js';
import { SLAB_BYTES } from '../lib/slabs.js';
import { fixedClock } from './helpers/clock.js';

// Small batches (up to 4 KiB of lines) are gzipped on the main thread when they end, not in the thread pool.
// Thousands can end at once (a window closing over a wide fan-out): the event loop gets turns between rounds of them.

const DESTINATIONS = 1000;

test('a thousand small batches ending at once are each one gzip of their lines, compressed a round at a time with turns of the event loop between rounds', async (t) => {
  const ctx = sinkContext({ clock: fixedClock(), bucket: 'bucket', prefix: 'small/{tenant}/', input: 'lines', s3: { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } });
  const sent = new Map<string, string[]>();
  const input: string[] = [];
  for (let i = 0; i < DESTINATIONS * 3; i++) {
    const tenant = `t${i % DESTINATIONS}`;
    // The last destination's batch is past 4 KiB: it goes to the pool, and arrives among the others.
    const line = JSON.stringify({ tenant, i, msg: tenant === `t${DESTINATIONS - 1}` ? 'x'.repeat(3000) : 'hello' });
    input.push(line);
    sent.set(`small/${tenant}`, [...(sent.get(`small/${tenant}`) ?? []), line]);
  }
  // A turn of the event loop: this counter moves once per turn while the test runs.
  let turn = 0;
  let turning = true;
  const tick = () => {
    turn += 1;
    if (turning) setImmediate(tick);
  };
  setImmediate(tick);
  const data = new Map<string, Buffer[]>();
  // Which turn each compression on the main thread ran in (zlib's own function, watched, not replaced).
  const syncPerTurn = new Map<number, number>();
  const gzipSync = zlib.gzipSync;
  zlib.gzipSync = ((...args: Parameters<typeof gzipSync>) => {
    syncPerTurn.set(turn, (syncPerTurn.get(turn) ?? 0) + 1);
    return gzipSync(...args);
  }) as typeof gzipSync;
  t.teardown(() => {
    zlib.gzipSync = gzipSync;
  });
  const ended: Batch[] = [];
  const sinkEnd = new Writable({
    objectMode: true,
    write(piece: BytesPiece | End, _encoding, callback) {
      if ('end' in piece) {
        ended.push(piece.batch);
        ctx.ledger.settle(piece.batch);
      } else {
        data.set(piece.batch.key, [...(data.get(piece.batch.key) ?? []), piece.data]);
        ctx.ledger.release(piece.batch, piece.data.length);
      }
      callback();
    },
  });
  await pipeline(Readable.from([Buffer.from(`${input.join('\n')}\n`)]), parse(ctx), keyBy(ctx), window(ctx), join(), gzip(ctx), sinkEnd);
  turning = false;
  t.is(ended.length, DESTINATIONS);
  // Each small object waits for its upload in slabs of compressed objects only (slabs.ts), never in a slab of
  // Node's 8 KiB pool that it would keep alive, with the lines and zlib output cut next to it.
  const small = [...data.entries()].filter(([key]) => !key.includes(`t${DESTINATIONS - 1}/`)).flatMap(([, pieces]) => pieces);
  t.is(small.length, DESTINATIONS - 1);
  t.true(small.every((piece) => piece.buffer.byteLength === SLAB_BYTES), 'every small object is in a slab of its own kind');
  t.true(new Set(small.map((piece) => piece.buffer)).size <= Math.ceil(small.reduce((sum, piece) => sum + piece.length + 8, 0) / (SLAB_BYTES / 2)));
  for (const batch of ended) {
    const lines = zlib.gunzipSync(Buffer.concat(data.get(batch.key) ?? [])).toString().split('\n');
    t.is(lines.pop(), '');
    t.deepEqual(lines, sent.get(batch.destination.prefix), batch.destination.prefix);
  }
  // All but the large batch on the main thread, in rounds of at most 128, with turns of the event loop between.
  const counts = [...syncPerTurn.values()];
  t.is(counts.reduce((a, b) => a + b, 0), DESTINATIONS - 1);
  t.true(Math.max(...counts) <= 128, `at most a round in one turn, saw ${Math.max(...counts)}`);
  t.true(syncPerTurn.size >= (DESTINATIONS - 1) / 128, `compressions spread over ${syncPerTurn.size} turns`);
});
