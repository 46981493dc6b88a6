import test from 'ava';
import type { Batch } from '../lib/batch.js';
import { decide, Ledger } from '../lib/ledger.js';
import { prng } from './helpers/data.js';

const batch = (seq: number): Batch =>
  ({ seq, destination: { bucket: 'b', prefix: '', id: `b${seq}` }, bucket: 'b', key: `k${seq}`, openedAt: 0, windowEnd: 1, events: 1, bytes: 0, streaming: false });

test('decide: admit what fits, and anything when nothing is held', (t) => {
  const never = () => {
    throw new Error('draining is not needed to admit');
  };
  t.is(decide(0, 100, 40, never), 'admit');
  t.is(decide(60, 100, 40, never), 'admit');
  t.is(decide(0, 100, 500, never), 'admit');
});

test('decide: wait when enough is draining, close when the budget is full of stuck batches', (t) => {
  t.is(decide(90, 100, 20, () => 10), 'wait');
  t.is(decide(90, 100, 20, () => 9), 'close');
  t.is(decide(100, 100, 1, () => 0), 'close');
});

test('the ledger follows bytes from admission through compression to S3', (t) => {
  const ledger = new Ledger(1000);
  const a = batch(1);
  const b = batch(2);
  ledger.charge(a, 400);
  ledger.charge(b, 300);
  t.is(ledger.held, 700);
  ledger.convert(a, 400, 40);
  t.is(ledger.held, 340);
  t.is(ledger.heldBy(a), 40);
  t.is(ledger.draining(), 0);
  ledger.markClosed(b);
  t.is(ledger.draining(), 300);
  ledger.setInParts(a, 30);
  t.is(ledger.draining(), 330);
  ledger.release(a, 30);
  t.is(ledger.heldBy(a), 10);
  t.is(ledger.draining(), 300);
  ledger.settle(a);
  ledger.settle(b);
  t.is(ledger.held, 0);
  t.is(ledger.peak, 700);
});

test('released() resolves at the next release, and wake() frees every waiter', async (t) => {
  const ledger = new Ledger(100);
  const a = batch(1);
  ledger.charge(a, 50);
  let woke = 0;
  const first = ledger.released().then(() => woke++);
  ledger.charge(a, 10);
  await Promise.resolve();
  t.is(woke, 0, 'charging does not wake');
  ledger.release(a, 5);
  await first;
  t.is(woke, 1);
  const second = ledger.released();
  ledger.wake();
  await second;
  t.pass();
});

test('draining() is kept as batches change: it equals a count over every batch after any sequence of calls', (t) => {
  const random = prng(7);
  const ledger = new Ledger(1 << 20);
  const model = new Map<string, { held: number; closed: boolean; inParts: number }>();
  const pick = () => batch(1 + Math.floor(random() * 20));
  for (let step = 0; step < 5000; step++) {
    const b = pick();
    const m = model.get(b.key) ?? { held: 0, closed: false, inParts: 0 };
    const n = Math.floor(random() * 500);
    switch (Math.floor(random() * 6)) {
      case 0:
        ledger.charge(b, n);
        m.held += n;
        model.set(b.key, m);
        break;
      case 1:
        if (!model.has(b.key)) break;
        ledger.convert(b, n, Math.floor(n / 4));
        m.held += Math.floor(n / 4) - n;
        break;
      case 2: {
        if (!model.has(b.key) || n === 0) break;
        ledger.release(b, n);
        const freed = Math.min(n, m.held);
        m.held -= freed;
        m.inParts = Math.max(0, m.inParts - freed);
        break;
      }
      case 3:
        ledger.markClosed(b);
        m.closed = true;
        model.set(b.key, m);
        break;
      case 4:
        if (!model.has(b.key)) break;
        ledger.setInParts(b, n);
        m.inParts = n;
        break;
      default:
        ledger.settle(b);
        model.delete(b.key);
    }
    let expected = 0;
    for (const e of model.values()) expected += e.closed ? e.held : Math.min(e.held, e.inParts);
    if (ledger.draining() !== expected) {
      t.fail(`step ${step}: draining() ${ledger.draining()}, expected ${expected}`);
      return;
    }
  }
  t.pass();
});
