import test from 'ava';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { composeSink, gzip, join, keyBy, lineGroups, parse, sinkContext, upload, window, type Receipt, type SinkRecord } from '../lib/index.js';
import { prng, noisyLine } from './helpers/data.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], { bytesPerSecond: 8 * 1024 * 1024 });

const MiB = 1024 * 1024;

/** A user's own stage: blanks the email field of every event. */
class Redact extends Transform {
  constructor() {
    super({ objectMode: true });
  }
  override _transform(events: SinkRecord[], _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, events.map((e) => ({ ...e, payload: { ...(e.payload as object), email: '[redacted]' } })));
  }
}

test('a hand-built chain with a redaction step after parse delivers redacted events, with backpressure intact', async (t) => {
  const TOTAL_EVENTS = 32 * 1024;
  const BUDGET = 8 * MiB;
  const ctx = sinkContext({ clock: fixedClock(), bucket: 'bucket', prefix: 'redacted/', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, partSize: 5 * MiB, maxBufferedBytes: BUDGET, gzipLevel: 1 });
  const receipts: Receipt[] = [];
  ctx.on('object', (r) => receipts.push(r));
  const random = prng(3);
  const noise = Array.from({ length: 256 }, () => noisyLine(random, 1000));
  let produced = 0;
  let producedAtFirstPart = -1;
  const source = new Readable({
    objectMode: true,
    read() {
      if (produced === TOTAL_EVENTS) {
        this.push(null);
        return;
      }
      if (producedAtFirstPart < 0 && env.proxy.log.some((l) => l.operation === 'UploadPart' && l.status === 200)) producedAtFirstPart = produced;
      this.push({ payload: { n: produced, email: `user${produced}@example.com`, noise: noise[produced % 256] } });
      produced += 1;
    },
  });
  const sink = composeSink(ctx, [parse(ctx), new Redact(), keyBy(ctx), window(ctx), join(), gzip(ctx), upload(ctx)]);
  await pipeline(source, sink);

  t.log({ producedAtFirstPart, peak: ctx.stats().peakBufferedBytes });
  t.true(producedAtFirstPart > 0 && producedAtFirstPart < TOTAL_EVENTS * 0.75, `the source had made ${producedAtFirstPart} of ${TOTAL_EVENTS} events when the first part landed`);
  t.true(ctx.stats().peakBufferedBytes <= BUDGET);
  // Every event once, redacted, in order within its object (the budget may have closed an object early).
  const seen: number[] = [];
  for (const r of receipts) {
    let previous = -1;
    for (const line of await env.s3.lines('bucket', r.key)) {
      const event = JSON.parse(line);
      if (event.email !== '[redacted]') t.fail(`event ${event.n} not redacted`);
      if (event.n <= previous) t.fail(`event ${event.n} after ${previous} in ${r.key}`);
      previous = event.n;
      seen.push(event.n);
    }
  }
  t.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: TOTAL_EVENTS }, (_, i) => i));
});

test('the stages compose with core pipeline alone, the context carrying the receipts', async (t) => {
  const ctx = sinkContext({ clock: fixedClock(), bucket: 'bucket', prefix: 'plain-pipeline/', s3: env.s3.s3Config, input: 'lines' });
  const receipts: Receipt[] = [];
  ctx.on('object', (r) => receipts.push(r));
  await pipeline(Readable.from([Buffer.from('a\nb\n'), Buffer.from('c\n')]), parse(ctx), keyBy(ctx), window(ctx), join(), gzip(ctx), upload(ctx));
  ctx.dispose();
  t.is(receipts.length, 1);
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), ['a', 'b', 'c']);
});

// window takes keyBy's groups as they are when it batches by arrival: a field a
// stage of the user's put on them, even one named `time`, does not move them.
test('a stage between keyBy and window that gives its groups a time of its own does not change their window (by arrival)', async (t) => {
  const clock = fixedClock();
  const ctx = sinkContext({ clock, bucket: 'bucket', prefix: 'own-time/', s3: env.s3.s3Config, input: 'lines' });
  const receipts: Receipt[] = [];
  ctx.on('object', (r) => receipts.push(r));
  const stamp = new Transform({
    objectMode: true,
    transform(groups: object[], _encoding, callback) {
      callback(null, groups.map((group) => Object.assign(group, { time: 0 })));
    },
  });
  await pipeline(Readable.from([Buffer.from('a\nb\n'), Buffer.from('c\n')]), parse(ctx), keyBy(ctx), stamp, window(ctx), join(), gzip(ctx), upload(ctx));
  ctx.dispose();
  t.is(receipts.length, 1);
  const at = new Date(clock.now()).toISOString();
  t.true(receipts[0]!.key.startsWith(`own-time/${at.slice(0, 4)}/${at.slice(5, 7)}/${at.slice(8, 10)}/${at.slice(11, 13)}/`), receipts[0]!.key);
  t.deepEqual(await env.s3.lines('bucket', receipts[0]!.key), ['a', 'b', 'c']);
});

test('lineGroups hands join a stretch of lines copied out of the chunk in one go (with keepChunks, where it lies when it is most of the chunk); join passes it on with no second copy, and joins other lines, framed the same', async (t) => {
  /** A chunk in memory of its own (not a slice of Node's shared pool, where the copies could land too), of `room` bytes. */
  const chunkOf = (text: string, room: number) => {
    const memory = new Uint8Array(room);
    memory.set(new TextEncoder().encode(text));
    return Buffer.from(memory.buffer, 0, Buffer.byteLength(text));
  };
  const run = async (keepChunks: boolean, chunks: Buffer[]) => {
    const ctx = sinkContext({ bucket: 'bucket', prefix: 'p/', input: 'lines', keepChunks, clock: fixedClock(), s3: env.s3.s3Config });
    t.teardown(() => ctx.dispose());
    const out: { data: Buffer; events?: number }[] = [];
    const collect = async (source: AsyncIterable<({ data: Buffer; events?: number } | { end: true })[]>) => {
      for await (const pieces of source) for (const piece of pieces) if ('data' in piece) out.push(piece);
    };
    await pipeline(Readable.from(chunks), lineGroups(ctx), window(ctx), join(), collect);
    t.deepEqual(out.map((p) => p.data.toString()), ['start of carried\n', 'line one\nline two\n']);
    t.deepEqual(out.map((p) => p.events), [1, 2]);
    t.not(out[0]?.data.buffer, chunks[1]?.buffer, 'the carried line is joined into a buffer of its own');
    return out[1]?.data as Buffer;
  };
  const text = 'carried\nline one\nline two\n';

  const copied = chunkOf(text, 26);
  t.not((await run(false, [Buffer.from('start of '), copied])).buffer, copied.buffer, 'the stretch is copied out of the chunk: the writer may fill it again');

  // The stretch, with its \n, is 18 of the chunk's 26 bytes: kept where it lies.
  const kept = chunkOf(text, 26);
  const stretch = await run(true, [Buffer.from('start of '), kept]);
  t.is(stretch.buffer, kept.buffer, 'keepChunks: the stretch is the chunk itself, no copy');
  t.is(stretch.byteOffset, kept.byteOffset + 'carried\n'.length);

  // The same bytes in a chunk whose memory is 64 KiB: the 18 bytes are copied, so that they do not keep 64 KiB alive.
  const inLarge = chunkOf(text, 64 * 1024);
  t.not((await run(true, [Buffer.from('start of '), inLarge])).buffer, inLarge.buffer, 'keepChunks: a stretch under half of its chunk is copied all the same');
});
