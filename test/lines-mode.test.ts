import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type Receipt, type Rejection, type SinkOptions } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

/** `bytes` cut into chunks of 1, 2, 3, ... bytes, so every kind of boundary occurs. */
function awkwardChunks(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0, size = 1; at < bytes.length; at += size, size = (size % 7) + 1) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

async function deliver(input: Buffer[], options: SinkOptions = {}) {
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: `lines-${Math.random().toString(36).slice(2)}/`, input: 'lines', s3: env.s3.s3Config, ...options });
  const receipts: Receipt[] = [];
  const rejected: Rejection[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  sink.on('rejected', (r: Rejection) => rejected.push(r));
  await pipeline(Readable.from(input), sink);
  const bodies = await Promise.all(receipts.map((r) => env.s3.body('bucket', r.key)));
  return { receipts, rejected, body: Buffer.concat(bodies) };
}

test('lines cut at every kind of chunk boundary, split UTF-8 characters included, arrive intact', async (t) => {
  const lines = ['{"msg":"grüße"}', 'plain € line', '日本語のログ', 'x', '{"emoji":"🙂🙃"}', 'last line without newline'];
  const input = Buffer.from(lines.join('\n'));
  const chunks = awkwardChunks(input);
  t.true(chunks.some((c) => c.length > 0 && (c[c.length - 1]! & 0xc0) === 0xc0), 'some chunk ends inside a UTF-8 character');
  const { body, receipts } = await deliver(chunks);
  t.is(body.toString('utf8'), lines.map((l) => `${l}\n`).join(''));
  t.is(receipts[0]?.events, lines.length);
});

test('CRLF input becomes LF lines; empty lines are skipped; invalid UTF-8 and NUL bytes pass through', async (t) => {
  const odd = Buffer.from([0xff, 0x00, 0xfe, 0x41]);
  const input = Buffer.concat([Buffer.from('one\r\n\r\ntwo\n\n'), odd, Buffer.from('\nthree\r\n')]);
  const { body } = await deliver(awkwardChunks(input));
  t.deepEqual(body, Buffer.concat([Buffer.from('one\ntwo\n'), odd, Buffer.from('\nthree\n')]));
});

test('a line longer than maxLineBytes is rejected with its reason and first bytes; the lines around it arrive', async (t) => {
  const long = 'L'.repeat(5000);
  const { body, rejected } = await deliver(awkwardChunks(Buffer.from(`before\n${long}\nafter\n`)).concat([]), { maxLineBytes: 1000 });
  t.is(body.toString(), 'before\nafter\n');
  t.is(rejected.length, 1);
  t.is(rejected[0]?.code, 'ERR_S3SINK_LINE_TOO_LONG');
  t.regex(rejected[0]!.reason, /line of 5000 bytes is longer than maxLineBytes \(1000\)/);
  t.is(rejected[0]?.head, 'L'.repeat(64));
});

test('a line with a lone \\r keeps its exact bytes as a JSON string when it is UTF-8; one that is not UTF-8 is rejected with the reason; the lines around it arrive', async (t) => {
  const binary = Buffer.from([0x78, 0x0d, 0xff, 0x79]);
  const input = Buffer.concat([Buffer.from('before\n'), binary, Buffer.from('\nc\rd é\r\nafter\n')]);
  const { body, rejected } = await deliver(awkwardChunks(input));
  t.is(body.toString('utf8'), `before\n${JSON.stringify('c\rd é')}\nafter\n`);
  t.deepEqual(Buffer.from(JSON.parse(body.toString('utf8').split('\n')[1]!) as string), Buffer.from('c\rd é'), 'the same bytes back');
  t.deepEqual(
    rejected.map((r) => [r.code, r.reason]),
    [['ERR_S3SINK_PAYLOAD', 'payload holds a line break (\\r at byte 1) and is not valid UTF-8: no one-line form keeps its bytes (as a JSON string, its invalid bytes would become U+FFFD)']],
  );
  t.is(rejected[0]?.head, binary.toString('utf8'));
});

test('written in large chunks (stretches of lines go as read, with no object per line): the same bytes, events and rejections as line by line, with keepChunks and a spool too', async (t) => {
  const regular = Array.from({ length: 300 }, (_, i) => `{"i":${i},"msg":"regular line ${i} ${'x'.repeat(60)}"}`); // 100 of them are more than 4 KiB: a chunk of its own memory
  const binary = Buffer.from([0x78, 0x0d, 0xff, 0x79]);
  const chunks = [
    Buffer.from(`${regular.slice(0, 100).join('\n')}\n${regular[100]!.slice(0, 5)}`), // a stretch, and the start of a line carried over
    Buffer.from(`${regular[100]!.slice(5)}\n${regular.slice(101, 200).join('\n')}\n`), // the carried line ends, then a stretch
    Buffer.concat([Buffer.from('a\r\n\nb c\rd\n'), binary, Buffer.from(`\n${'L'.repeat(300)}\n`)]), // every kind of irregular line
    Buffer.from(`${regular.slice(200).join('\n')}\n`),
  ];
  const expected = [...regular.slice(0, 200), 'a', JSON.stringify('b c\rd'), ...regular.slice(200)];
  const written = chunks.map((c) => Buffer.from(c));
  for (const keepChunks of [false, true]) {
    for (const spooled of [false, true]) {
      const dir = spooled ? await mkdtemp(join(tmpdir(), 's3-sink-chunks-')) : null;
      t.teardown(() => (dir === null ? undefined : rm(dir, { recursive: true, force: true })));
      const { body, receipts, rejected } = await deliver(chunks, { maxLineBytes: 200, keepChunks, ...(dir === null ? {} : { spool: { dir } }) });
      const how = `keepChunks: ${keepChunks}, spool: ${spooled}`;
      t.is(body.toString('utf8'), expected.map((l) => `${l}\n`).join(''), how);
      t.is(receipts.reduce((n, r) => n + r.events, 0), expected.length, how);
      t.deepEqual(rejected.map((r) => r.code).sort(), ['ERR_S3SINK_LINE_TOO_LONG', 'ERR_S3SINK_PAYLOAD'], how);
      t.deepEqual(chunks, written, `${how}: the chunks written are as they were`);
    }
  }
});

test('a Buffer the writer fills again once its write has called back does not change what was written, a line cut across two writes included (with and without a spool)', async (t) => {
  for (const spooled of [false, true]) {
    const dir = spooled ? await mkdtemp(join(tmpdir(), 's3-sink-reuse-')) : null;
    t.teardown(() => (dir === null ? undefined : rm(dir, { recursive: true, force: true })));
    const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', prefix: `reuse-${spooled}/`, input: 'lines', s3: env.s3.s3Config, ...(dir === null ? {} : { spool: { dir } }) });
    const receipts: Receipt[] = [];
    sink.on('object', (r: Receipt) => receipts.push(r));
    const buf = Buffer.from('aaa\nbbb\nccc\n');
    const write = (chunk: Buffer) => new Promise<void>((resolve, reject) => sink.write(chunk, (err) => (err ? reject(err) : resolve())));
    await write(buf);
    buf.write('XXX\nYYY\nZZZ\n');
    // A line cut across two writes of the same Buffer: its first part is carried while the Buffer is filled again.
    buf.fill(0).write('ddd\nee');
    await write(buf.subarray(0, 6));
    buf.fill(0).write('e\nfff\n');
    await write(buf.subarray(0, 6));
    buf.fill(0x58);
    await sink.close();
    const bodies = await Promise.all(receipts.map((r) => env.s3.body('bucket', r.key)));
    t.is(Buffer.concat(bodies).toString(), 'aaa\nbbb\nccc\nddd\neee\nfff\n', `spool: ${spooled}`);
  }
});
