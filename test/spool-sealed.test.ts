import test from 'ava';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { s3Sink, type Recovered, type SinkWarning } from '../lib/index.js';
import { DATA, encodeHeader, encodeRecord, END, UPLOAD } from '../lib/segment.js';
import { segmentName } from '../lib/spool.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test);

const T = Date.UTC(2026, 0, 2, 3, 4, 5);
const keyOf = (name: string) => `sealed/2026/01/02/03/2026-01-02-03-04-05-${name.repeat(64 / name.length)}.gz`;

/** A segment as a crash would leave it: header, data, and what follows. */
function segment(key: string, sealed: boolean, lines: string[], after: Buffer[]): Buffer {
  const header = encodeHeader({ v: 1, bucket: 'bucket', key, openedAt: T, ...(sealed ? { sealed: true as const } : {}) });
  return Buffer.concat([header, encodeRecord(DATA, Buffer.from(lines.map((l) => `${l}\n`).join(''))), ...after]);
}

test('recovery of sealed segments (a source that reads its events again): delivered only when they end in END; an unfinished one is dropped and said', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-sealed-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pathOf = (key: string) => join(dir, segmentName('bucket', key));
  const finished = keyOf('a');
  const finishedNoted = keyOf('b');
  const unfinished = keyOf('c');
  const plain = keyOf('d');
  const note = encodeRecord(UPLOAD, Buffer.from(JSON.stringify({ uploadId: 'no-such-upload' })));
  await writeFile(pathOf(finished), segment(finished, true, ['{"n":1}', '{"n":2}'], [encodeRecord(END, Buffer.alloc(0))]));
  // Sealed, then an upload was noted after the seal: still finished.
  await writeFile(pathOf(finishedNoted), segment(finishedNoted, true, ['{"n":3}'], [encodeRecord(END, Buffer.alloc(0)), note]));
  await writeFile(pathOf(unfinished), segment(unfinished, true, ['{"n":4}'], [note]));
  // Not sealed (the stream inputs): delivered as ever, whatever its end.
  await writeFile(pathOf(plain), segment(plain, false, ['{"n":5}'], []));

  const sink = s3Sink({ bucket: 'bucket', prefix: 'sealed/', s3: env.s3.s3Config, clock: fixedClock(), spool: { dir } });
  const warnings: SinkWarning[] = [];
  sink.on('warning', (w) => warnings.push(w));
  const recovered = new Promise<Recovered>((resolve) => sink.once('recovered', resolve));
  t.deepEqual(await recovered, { batches: 3, events: 4, bytes: 32 });
  await sink.close();
  t.deepEqual((await env.s3.keys('bucket', 'sealed/')).sort(), [finished, finishedNoted, plain].sort());
  t.deepEqual(await env.s3.lines('bucket', finished), ['{"n":1}', '{"n":2}']);
  const dropped = warnings.filter((w) => w.code === 'S3SINK_SPOOL_UNSEALED');
  t.is(dropped.length, 1);
  t.regex(dropped[0]?.message ?? '', new RegExp(unfinished.replace(/[.]/g, '\\.')));
  t.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.seg')), []);
});
