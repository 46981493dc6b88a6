import test from 'ava';
import { COMPRESSOR_BYTES, compressorBytes, Ledger, PARALLEL_PIECES, pieceSlots, reservedBytes } from '../lib/ledger.js';
import { DICTIONARY_BYTES } from '../lib/gzipPieces.js';
import { PiecePool } from '../lib/piecePool.js';

const MiB = 1024 * 1024;

test('the pool runs at most `slots` jobs at once, the others in the order given, whoever gave them', (t) => {
  const pool = new PiecePool(2);
  const started: string[] = [];
  const finish = new Map<string, () => void>();
  for (const name of ['a1', 'b1', 'a2', 'c1', 'b2']) {
    pool.run((done) => {
      started.push(name);
      finish.set(name, done);
    });
  }
  t.deepEqual(started, ['a1', 'b1']);
  t.is(pool.running, 2);
  t.is(pool.waiting, 3);
  finish.get('b1')!();
  t.deepEqual(started, ['a1', 'b1', 'a2']);
  finish.get('b1')!(); // a second call of the same done frees nothing more
  t.is(pool.running, 2);
  finish.get('a1')!();
  finish.get('a2')!();
  t.deepEqual(started, ['a1', 'b1', 'a2', 'c1', 'b2']);
  t.is(pool.peak, 2);
  finish.get('c1')!();
  finish.get('b2')!();
  t.is(pool.running, 0);
  t.is(pool.peak, 2);
});

test('whenNoneWaiting: at once when no job waits, else when the last waiting one starts', (t) => {
  const pool = new PiecePool(1);
  let woken = 0;
  pool.whenNoneWaiting(() => (woken += 1));
  t.is(woken, 1);
  const dones: (() => void)[] = [];
  for (let i = 0; i < 3; i++) pool.run((done) => dones.push(done));
  pool.whenNoneWaiting(() => (woken += 1));
  pool.whenNoneWaiting(() => (woken += 1));
  dones[0]!();
  t.is(woken, 1, 'one still waits');
  dones[1]!();
  t.is(woken, 3, 'every waiter, once the queue is empty');
  dones[2]!();
  t.is(woken, 3);
  t.throws(() => new PiecePool(0), { instanceOf: RangeError });
});

test('the cap is set aside from the budget once, whatever the number of batches; each streaming batch is charged its dictionary only', (t) => {
  t.is(pieceSlots(64 * MiB), PARALLEL_PIECES);
  t.true(PARALLEL_PIECES >= 2 && PARALLEL_PIECES <= 1025);
  // A small budget gets fewer slots: their compressors take at most a quarter of it (and there is always one).
  t.is(pieceSlots(1 * MiB), 1);
  t.true(pieceSlots(3 * MiB) * COMPRESSOR_BYTES <= (3 * MiB) / 4);
  t.is(reservedBytes(64 * MiB, true), PARALLEL_PIECES * COMPRESSOR_BYTES);
  t.is(reservedBytes(64 * MiB, false), 0);
  t.is(compressorBytes(true), DICTIONARY_BYTES);
  t.is(compressorBytes(false), COMPRESSOR_BYTES);
  const ledger = new Ledger(64 * MiB, reservedBytes(64 * MiB, true));
  t.is(ledger.max + ledger.reserved, 64 * MiB);
  t.is(ledger.held, 0, 'what is set aside is not held by any batch');
});
