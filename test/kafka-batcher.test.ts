import test from 'ava';
import { destination, type Destination } from '../lib/batch.js';
import { lineBytes } from '../lib/framing.js';
import { decodeCuts, encodeCuts, MAX_METADATA_BYTES, PartitionBatcher, piecesOf, shareLines, type LogBatch } from '../lib/kafka/batcher.js';
import { Frontier } from '../lib/kafka/frontier.js';
import { consumeKafka } from '../lib/kafka/index.js';
import { parseKey } from '../lib/key.js';
import type { RoutedEvent } from '../lib/route.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 2, 3, 4, 0);
const A = destination('bucket', 'a');
const B = destination('bucket', 'b');
const OPTIONS = { groupId: 'g', topic: 't', partition: 3, windowMs: MINUTE, maxBatchBytes: 1000, maxObjectBytes: 600 };

const routed = (dest: Destination, line: string): RoutedEvent => ({ destination: dest, line, bytes: lineBytes(line) });

interface Rec {
  offset: number;
  timestamp: number;
  to: Destination | null;
  line?: string;
}

/** Feeds records through a batcher (cuts as recorded) and returns the closed batches, plus the one left open. */
function run(records: Rec[], options = OPTIONS, cuts: number[] = [], cutAfter: number[] = []): { closed: LogBatch[]; open: LogBatch | null; batcher: PartitionBatcher } {
  const batcher = new PartitionBatcher(options, cuts);
  const closed: LogBatch[] = [];
  for (const r of records) {
    const event = r.to === null ? null : routed(r.to, r.line ?? `line ${r.offset}`);
    const before = batcher.closeBefore(r, event);
    if (before) closed.push(before);
    batcher.take(r, event);
    if (cutAfter.includes(r.offset)) closed.push(batcher.cut() as LogBatch);
  }
  return { closed, open: batcher.open, batcher };
}

const ranges = (batches: LogBatch[]) => batches.map((b) => [b.first, b.last]);

test('a log batch closes before the first record whose timestamp is past its window; a late record stays', (t) => {
  const { closed, open } = run([
    { offset: 10, timestamp: T0 + 5_000, to: A },
    { offset: 11, timestamp: T0 + 59_999, to: B },
    { offset: 12, timestamp: T0 - 3 * MINUTE, to: A }, // late: stays
    { offset: 13, timestamp: T0 + MINUTE, to: A }, // next window
    { offset: 14, timestamp: T0 + MINUTE + 1, to: null }, // rejected: still in the range
  ]);
  t.deepEqual(ranges(closed), [[10, 12]]);
  t.deepEqual([open?.first, open?.last], [13, 14]);
  const first = closed[0] as LogBatch;
  t.deepEqual([...first.shares.values()].map(shareLines), [['line 10', 'line 12'], ['line 11']]);
  t.is(first.events, 3);
  // The key's time: the destination's first record, in the batch's window.
  const keys = [...first.shares.values()].map((s) => parseKey(s.batch.key));
  t.deepEqual(
    keys.map((k) => [k?.prefix, k?.time]),
    [
      ['a', T0 + 5_000],
      ['b', T0 + 59_000],
    ],
  );
});

test('the same records make the same batches and keys, whoever reads them; another first offset, group or destination another key', (t) => {
  const records: Rec[] = [
    { offset: 0, timestamp: T0, to: A },
    { offset: 1, timestamp: T0 + 1, to: B },
    { offset: 2, timestamp: T0 + MINUTE, to: A },
  ];
  const keysOf = (r: ReturnType<typeof run>) => r.closed.flatMap((b) => [...b.shares.values()].map((s) => s.batch.key));
  const one = keysOf(run(records));
  t.deepEqual(keysOf(run(records)), one);
  t.is(new Set(one).size, 2);
  const shifted = keysOf(run(records.map((r) => ({ ...r, offset: r.offset + 1 }))));
  t.false(shifted.some((k) => one.includes(k)));
  const otherGroup = keysOf(run(records, { ...OPTIONS, groupId: 'h' }));
  t.false(otherGroup.some((k) => one.includes(k)));
  t.true(one.every((k) => /-[0-9a-f]{64}\.gz$/.test(k)));
});

test('a batch closes before it would pass maxBatchBytes, or one of its objects maxObjectBytes', (t) => {
  const line = 'x'.repeat(249); // 250 bytes with its newline
  const records: Rec[] = [0, 1, 2, 3, 4, 5].map((offset) => ({ offset, timestamp: T0, to: offset < 3 ? A : B, line }));
  // A: 250, 500, then 750 > 600 → closes before offset 2; then 2 (A), 3, 4 (B) = 750; 5 (B) → B would be 750 > 600.
  t.deepEqual(ranges(run(records).closed), [
    [0, 1],
    [2, 4],
  ]);
  const byBatch = run(records, { ...OPTIONS, maxObjectBytes: 10_000, maxBatchBytes: 800 });
  t.deepEqual(ranges(byBatch.closed), [[0, 2]]);
  t.deepEqual([byBatch.open?.first, byBatch.open?.last], [3, 5]);
});

test('a cut is recorded: a reader given the recorded cuts makes the same batches, and one without them does not', (t) => {
  const records: Rec[] = [0, 1, 2, 3, 4, 5, 6].map((offset) => ({ offset, timestamp: T0 + offset, to: offset % 2 ? A : B }));
  const first = run(records, OPTIONS, [], [2, 4]);
  t.deepEqual(ranges(first.closed), [
    [0, 2],
    [3, 4],
  ]);
  t.deepEqual(first.batcher.cutsFrom(0), [2, 4]);
  t.deepEqual(first.batcher.cutsFrom(3), [4]);
  // A new reader from offset 0 with the metadata committed at offset 0.
  const metadata = encodeCuts(first.batcher.cutsFrom(0));
  const again = run(records, OPTIONS, decodeCuts(metadata));
  t.deepEqual(ranges(again.closed), ranges(first.closed));
  const keys = (r: ReturnType<typeof run>) => r.closed.flatMap((b) => [...b.shares.values()].map((s) => s.batch.key));
  t.deepEqual(keys(again), keys(first));
  // Without them the batch runs on: another key set (which is why a cut is recorded before its objects are written).
  t.deepEqual(ranges(run(records).closed), []);
});

test('a recorded cut below a batch that starts later (a gap in the log) is passed, not applied', (t) => {
  const { closed, open } = run(
    [
      { offset: 10, timestamp: T0, to: A },
      { offset: 11, timestamp: T0, to: A },
    ],
    OPTIONS,
    [5, 8],
  );
  t.deepEqual(ranges(closed), []);
  t.deepEqual([open?.first, open?.last], [10, 11]);
});

test('records already seen are reported as such (a fetch that re-delivers them)', (t) => {
  const { batcher } = run([{ offset: 7, timestamp: T0, to: A }]);
  t.true(batcher.seen({ offset: 7, timestamp: T0 }));
  t.false(batcher.seen({ offset: 8, timestamp: T0 }));
  t.is(batcher.next, 8);
});

test('skip passes over the records of a batch on its way: they are seen, and the next record opens a batch', (t) => {
  const batcher = new PartitionBatcher(OPTIONS, [4]);
  for (const offset of [3, 4]) batcher.take({ offset, timestamp: T0 }, routed(A, `line ${offset}`));
  t.deepEqual(ranges([batcher.closeBefore({ offset: 5, timestamp: T0 }, null) as LogBatch]), [[3, 4]]);
  batcher.skip(9);
  t.true(batcher.seen({ offset: 9, timestamp: T0 }));
  t.false(batcher.seen({ offset: 10, timestamp: T0 }));
  batcher.take({ offset: 10, timestamp: T0 }, routed(A, 'line 10'));
  t.is(batcher.open?.first, 10);
  t.throws(() => batcher.skip(20), { message: /with a batch open at 10/ });
});

test('pass: offsets with nothing to read (control records) count as read, with a batch open or not; never backwards', (t) => {
  const batcher = new PartitionBatcher(OPTIONS);
  batcher.take({ offset: 3, timestamp: T0 }, routed(A, 'line 3'));
  batcher.pass(5);
  t.is(batcher.next, 6);
  t.deepEqual([batcher.open?.first, batcher.open?.last], [3, 3]);
  batcher.pass(4);
  t.is(batcher.next, 6);
});

test('a cut where a recorded cut is already (a batch read again to its recorded end, then cut when idle) is recorded once', (t) => {
  const batcher = new PartitionBatcher(OPTIONS, [4]);
  for (const offset of [3, 4]) batcher.take({ offset, timestamp: T0 }, routed(A, `line ${offset}`));
  t.deepEqual(ranges([batcher.cut() as LogBatch]), [[3, 4]]);
  t.deepEqual(batcher.cutsFrom(0), [4]);
});

test('a timestamp no key can hold (-1, "no timestamp", or before 1970; past 9999) counts as the nearest one a key can: the record is taken like any other', (t) => {
  const { closed, open } = run([
    { offset: 0, timestamp: -1, to: A },
    { offset: 1, timestamp: -157_680_000_000, to: B },
    { offset: 2, timestamp: T0, to: A }, // a later window: closes the batch of 1970
    { offset: 3, timestamp: -1, to: A }, // late: stays
    { offset: 4, timestamp: 8.64e15, to: A }, // past 9999: another window
  ]);
  t.deepEqual(ranges(closed), [
    [0, 1],
    [2, 3],
  ]);
  t.deepEqual([...(closed[0] as LogBatch).shares.values()].map((s) => [parseKey(s.batch.key)?.time, shareLines(s)]), [
    [0, ['line 0']],
    [0, ['line 1']],
  ]);
  t.deepEqual([...(closed[1] as LogBatch).shares.values()].map(shareLines), [['line 2', 'line 3']]);
  t.deepEqual([open?.first, parseKey([...(open as LogBatch).shares.values()][0]?.batch.key ?? '')?.time], [4, Date.UTC(9999, 11, 31, 23, 59, 59)]);
});

test('piecesOf: each share becomes its framed lines (with their count) and its end', (t) => {
  const { closed } = run([
    { offset: 0, timestamp: T0, to: A },
    { offset: 1, timestamp: T0, to: B },
    { offset: 2, timestamp: T0 + MINUTE, to: A },
  ]);
  const pieces = piecesOf(closed[0] as LogBatch);
  t.is(pieces.length, 4);
  t.deepEqual(
    pieces.map((p) => ('end' in p ? 'end' : [p.data.toString(), p.events])),
    [['line 0\n', 1], 'end', ['line 1\n', 1], 'end'],
  );
});

test('decodeCuts: metadata that is not ours or is damaged has no cuts', (t) => {
  t.deepEqual(decodeCuts(null), []);
  t.deepEqual(decodeCuts(''), []);
  t.deepEqual(decodeCuts('{"other":1}'), []);
  t.deepEqual(decodeCuts('not json'), []);
  t.deepEqual(decodeCuts(encodeCuts([3, 9])), [3, 9]);
  t.deepEqual(decodeCuts(encodeCuts([])), []);
  t.deepEqual(decodeCuts(encodeCuts([9, 3, 2 ** 52])), [3, 9, 2 ** 52]);
  // Version 1, which earlier releases wrote, is still read.
  t.deepEqual(decodeCuts('{"s3sink":1,"cuts":[3,9]}'), [3, 9]);
  t.deepEqual(decodeCuts('{"s3sink":2,"cuts":"3,-6"}'), []);
  t.deepEqual(decodeCuts('{"s3sink":2,"cuts":[3]}'), []);
  // Version 1 while it fits (every release reads it); cuts a batch of a few thousand records apart: about 800 fit in Kafka's 4 KiB.
  t.is(encodeCuts([3, 9]), '{"s3sink":1,"cuts":[3,9]}');
  const many = Array.from({ length: 800 }, (_, i) => 1_000_000_000 + i * 5000);
  t.true(encodeCuts(many).startsWith('{"s3sink":2,'));
  t.true(encodeCuts(many).length <= MAX_METADATA_BYTES, `${encodeCuts(many).length} bytes`);
  t.deepEqual(decodeCuts(encodeCuts(many)), many);
});

test('Frontier: the committed offset moves past a batch only once it and every batch before it are safe', (t) => {
  const batch = (first: number, last: number) => ({ first, last }) as LogBatch;
  const f = new Frontier();
  const p1 = { batch: batch(0, 4), waiting: new Set(['k1']) };
  const p2 = { batch: batch(5, 9), waiting: new Set(['k2', 'k3']) };
  f.add(p1);
  f.add(p2);
  const open = batch(10, 12);
  t.is(f.offset(open, 13, -1), 0);
  p2.waiting.clear();
  t.is(f.offset(open, 13, -1), 0);
  p1.waiting.clear();
  t.is(f.offset(open, 13, -1), 10);
  t.is(f.offset(null, 13, -1), 13);
  t.is(new Frontier().offset(null, -1, 42), 42);
  t.true(f.settled);
});

test('a share copies its lines into blocks (1 KiB, doubling): a line longer than a block gets a block of its own, and nothing points into the buffers given', (t) => {
  const batcher = new PartitionBatcher({ ...OPTIONS, maxBatchBytes: 1e9, maxObjectBytes: 1e9 });
  const given = Buffer.from('x'.repeat(100));
  const long = 'y'.repeat(300 * 1024);
  const records = [routed(A, given as unknown as string), routed(A, long), routed(A, 'z'.repeat(2000))];
  records.forEach((event, i) => batcher.take({ offset: i, timestamp: T0 }, { ...event, bytes: lineBytes(event.line) }));
  given.fill(0); // the client reuses its buffers
  const share = [...(batcher.open as LogBatch).shares.values()][0];
  t.deepEqual(share && shareLines(share), ['x'.repeat(100), long, 'z'.repeat(2000)]);
  const pieces = piecesOf(batcher.cut() as LogBatch);
  t.deepEqual(
    pieces.map((p) => ('end' in p ? 'end' : [p.data.length, p.events])),
    [[101, 1], [300 * 1024 + 1, 1], [2001, 1], 'end'],
  );
});

test('consumeKafka checks its options at once: brokers, topics, groupId, and no time option (batches follow the log)', (t) => {
  const base = { brokers: ['127.0.0.1:1'], topics: ['t'], groupId: 'g', sink: { bucket: 'bucket', s3: { region: 'us-east-1' } } };
  t.throws(() => consumeKafka({ ...base, brokers: ['kafka'] }), { code: 'ERR_S3SINK_OPTION', message: /option brokers: got "kafka", expected host:port/ });
  t.throws(() => consumeKafka({ ...base, topics: [] }), { code: 'ERR_S3SINK_OPTION', message: /option topics/ });
  t.throws(() => consumeKafka({ ...base, groupId: '' }), { code: 'ERR_S3SINK_OPTION', message: /option groupId/ });
  t.throws(() => consumeKafka({ ...base, sink: { ...base.sink, time: { field: 'ts' } } }), { code: 'ERR_S3SINK_OPTION', message: /option sink\.time: .*expected nothing: a Kafka record's time is its timestamp/ });
});
