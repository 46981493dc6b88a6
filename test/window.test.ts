import test from 'ava';
import { destination, type Routed } from '../lib/batch.js';
import { lineBytes } from '../lib/framing.js';
import { parseKey } from '../lib/key.js';
import { windowOf } from '../lib/stages/window.js';
import { batchesOf, windowStages } from './helpers/window.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 2, 3, 4, 0);

test('windowOf: windows are aligned to multiples of windowMs since the epoch', (t) => {
  t.deepEqual(windowOf(T0, MINUTE), { start: T0, end: T0 + MINUTE });
  t.deepEqual(windowOf(T0 + MINUTE - 1, MINUTE), { start: T0, end: T0 + MINUTE });
  t.deepEqual(windowOf(T0 + MINUTE, MINUTE), { start: T0 + MINUTE, end: T0 + 2 * MINUTE });
  t.deepEqual(windowOf(T0 + 7_500, 5_000), { start: T0 + 5_000, end: T0 + 10_000 });
});

const setup = windowStages(test, T0 + 30_000);

const A = destination('bucket', 'a');
const B = destination('bucket', 'b');
const group = (dest: typeof A, ...lines: string[]): Routed => ({ destination: dest, lines, bytes: lines.reduce((n, l) => n + lineBytes(l), 0), acks: null });

const batches = batchesOf;

test('one batch per destination per window; the timer ends them with no input; keys carry the first arrival', async (t) => {
  const { clock, out, write } = setup();
  await write([group(A, 'a1', 'a2'), group(B, 'b1')]);
  clock.advance(5_000);
  await write([group(A, 'a3')]);
  t.is(clock.pending, 1, 'one timer for the window end');
  clock.set(T0 + MINUTE); // the window ends: the timer fires, no write needed
  t.is(clock.pending, 0, 'no timer once nothing is open');
  await write([group(B, 'b2'), group(A, 'a4')]);
  const seen = batches(out);
  t.deepEqual(
    seen.map((b) => [b.batch.destination.prefix, b.lines, b.ended]),
    [
      ['a', ['a1', 'a2', 'a3'], true],
      ['b', ['b1'], true],
      ['b', ['b2'], false],
      ['a', ['a4'], false],
    ],
  );
  t.is(parseKey(seen[0]!.batch.key)?.time, T0 + 30_000);
  t.is(parseKey(seen[2]!.batch.key)?.time, T0 + MINUTE);
  t.is(seen[0]!.batch.events, 3);
});

test('an event at the last millisecond stays in its window; one at the boundary starts the next', async (t) => {
  const { clock, out, write } = setup();
  clock.set(T0 + MINUTE - 1);
  await write([group(A, 'last')]);
  clock.set(T0 + MINUTE);
  await write([group(A, 'first')]);
  const seen = batches(out);
  t.deepEqual(seen.map((b) => b.lines), [['last'], ['first']]);
  t.is(seen[0]!.batch.windowEnd, T0 + MINUTE);
  t.is(seen[1]!.batch.windowEnd, T0 + 2 * MINUTE);
});

test('a batch rolls over before its lines would pass maxObjectBytes', async (t) => {
  const { out, write } = setup({ maxObjectBytes: 10, maxLineBytes: 9 });
  await write([group(A, 'aaaa', 'bbbb', 'cccc'), group(A, 'dddddddd', 'e')]);
  const seen = batches(out);
  t.deepEqual(seen.map((b) => b.lines), [['aaaa', 'bbbb'], ['cccc'], ['dddddddd'], ['e']]);
  t.true(seen.every((b) => b.batch.bytes <= 10));
  t.deepEqual(seen.map((b) => b.ended), [true, true, true, false]);
});

test('the end of the stream ends every open batch', async (t) => {
  const { stage, out, write, clock } = setup();
  await write([group(A, 'x'), group(B, 'y')]);
  await new Promise<void>((resolve) => stage.end(resolve));
  t.deepEqual(batches(out).map((b) => b.ended), [true, true]);
  t.is(clock.pending, 0);
});

test('window charges the budget for what it admits', async (t) => {
  const { ctx, write } = setup();
  await write([group(A, 'hello', 'world')]);
  t.is(ctx.ledger.held, 12);
  t.is(ctx.stats().bytesIn, 12);
  t.is(ctx.stats().openBatches, 1);
});

test('a stretch of lines as read (lineGroups) rolls over line by line like any group: no batch passes maxObjectBytes, every line counted once', async (t) => {
  const { out, write } = setup({ maxObjectBytes: 10, maxLineBytes: 9 });
  const read = Buffer.from('aaaa\nbbbb\ncccc\ndddddddd\ne\n');
  const stretch: Routed = { destination: A, lines: [read.subarray(0, read.length - 1)], bytes: read.length, acks: null, events: 5 };
  await write([stretch]);
  const seen = batches(out);
  t.deepEqual(seen.map((b) => b.lines.map(String)), [['aaaa', 'bbbb'], ['cccc'], ['dddddddd'], ['e']]);
  t.true(seen.every((b) => b.batch.bytes <= 10));
  t.is(seen.reduce((n, b) => n + b.batch.events, 0), 5);
});

test('a stretch that fits is admitted whole, its events counted and passed on with it', async (t) => {
  const { out, write } = setup();
  const read = Buffer.from('one\ntwo\nthree\n');
  await write([{ destination: A, lines: [read.subarray(0, read.length - 1)], bytes: read.length, acks: null, events: 3 }]);
  const pieces = out.filter((p) => !('end' in p)) as { lines: unknown[]; events?: number; batch: { events: number } }[];
  t.is(pieces.length, 1);
  t.is(pieces[0]?.events, 3);
  t.is(pieces[0]?.batch.events, 3);
});
