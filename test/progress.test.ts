import test from 'ava';
import { Progress } from '../lib/cli/progress.js';
import type { SinkStats } from '../lib/context.js';

const stats = (over: Partial<SinkStats> = {}): SinkStats => ({
  eventsIn: 0, eventsOut: 0, objects: 0, bytesIn: 0, bytesOut: 0, openBatches: 0, bufferedBytes: 0, peakBufferedBytes: 0, piecesInFlight: 0, peakPiecesInFlight: 0, uploadsInFlight: 0, rejected: 0, unrouted: 0, untimed: 0, late: 0, retries: 0, deadLettered: 0, deadLetteredEvents: 0, orphansAborted: 0, lostBatches: 0, lostEvents: 0, spooledEvents: 0, durableEvents: 0, recoveredBatches: 0, recoveredEvents: 0, redelivered: 0, fenced: 0, spooledBytes: 0, ...over,
});
const receipt = { bucket: 'b', key: 'k/2026/01/01/00/x.gz', events: 3, bytes: 2048, compressedBytes: 100, parts: 1 };

function capture(isTTY: boolean) {
  const lines: string[] = [];
  return { out: { isTTY, write: (text: string) => lines.push(text) }, lines };
}

test('on a TTY: one status line redrawn in place, no line per object', (t) => {
  const { out, lines } = capture(true);
  let current = stats();
  const progress = new Progress(out, () => current, false);
  current = stats({ eventsIn: 1000, bytesIn: 2_000_000, objects: 2, bufferedBytes: 3 * 1024 * 1024 });
  progress.object(receipt);
  progress.tick();
  t.is(lines.length, 1);
  t.regex(lines[0]!, /^\r\u001b\[Ks3-sink: \d+ events\/s, [\d.]+ MB\/s in, 2 objects written, 3.0 MiB buffered$/);
  progress.finish();
  t.is(lines[1], '\r\u001b[K', 'the status line is cleared before the summary');
  t.regex(lines[2]!, /^s3-sink: done: 0 events in 2 objects/);
});

test('not on a TTY: a line per object and a summary', (t) => {
  const { out, lines } = capture(false);
  const progress = new Progress(out, () => stats({ eventsOut: 3, objects: 1, bytesIn: 2048, bytesOut: 100, rejected: 1 }), false);
  progress.object(receipt);
  progress.finish();
  t.deepEqual(lines, [
    's3-sink: wrote s3://b/k/2026/01/01/00/x.gz (3 events, 2.0 KiB → 100 B)\n',
    lines[1]!,
  ]);
  t.regex(lines[1]!, /^s3-sink: done: 3 events in 1 objects, 2.0 KiB in → 100 B gzipped, [\d.]+ s; 1 rejected\n$/);
});

test('quiet: nothing but notes', (t) => {
  const { out, lines } = capture(true);
  const progress = new Progress(out, () => stats(), true);
  progress.start();
  progress.object(receipt);
  progress.rejected({ code: 'X', reason: 'r', head: 'h' });
  progress.note('SIGTERM: stopped reading stdin');
  progress.finish();
  t.deepEqual(lines, ['s3-sink: SIGTERM: stopped reading stdin\n']);
});

test('rejections: the first ten are shown, the rest counted', (t) => {
  const { out, lines } = capture(false);
  const progress = new Progress(out, () => stats(), false);
  for (let i = 0; i < 15; i++) progress.rejected({ code: 'ERR_S3SINK_LINE_TOO_LONG', reason: `line ${i} too long`, head: 'xxx' });
  t.is(lines.length, 10);
  t.is(lines[0], 's3-sink: rejected: line 0 too long: "xxx"\n');
  t.regex(lines[9]!, /further rejections are only counted/);
});

test('not delivered: everything read and not in a completed object, with where it is', (t) => {
  const { out, lines } = capture(false);
  // Two read: one rejected, one in a batch whose upload failed. Both lost, not "1 of 2" or "0 of 1".
  const progress = new Progress(out, () => stats({ eventsIn: 2, rejected: 1, uploadsInFlight: 1 }), false);
  progress.note(progress.undelivered(2));
  t.deepEqual(lines, ['s3-sink: not delivered: 2 of 2 events read (1 rejected, 0 batches open, 0 B buffered, 1 uploads cut off)\n']);
  const mixed = new Progress(out, () => stats({ eventsIn: 90, eventsOut: 40, rejected: 3, deadLetteredEvents: 20, openBatches: 2, bufferedBytes: 2048 }), false);
  // 100 read, 10 of them still in stream buffers before the sink parsed them.
  t.is(mixed.undelivered(100), 'not delivered: 60 of 100 events read (3 rejected, 20 in dead letters on disk, 2 batches open, 2.0 KiB buffered, 0 uploads cut off)');
});
