import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { s3Sink, type Receipt } from '../lib/index.js';
import { fixedClock } from './helpers/clock.js';
import { logLine } from './helpers/data.js';
import { gzipMembers as members, syncFlushes } from './helpers/gzip.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);
const run = promisify(execFile);

async function available(command: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

test('with parallelGzip, a hot destination is compressed in pieces on several threads and written as ONE gzip member, which zcat, Python (even zlib.decompress, which stops after a member) and Java read as the original lines', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'members/', s3: env.s3.s3Config, parallelGzip: true, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  const lines = Array.from({ length: 60_000 }, (_, i) => logLine(i));
  const expected = Buffer.from(`${lines.join('\n')}\n`);
  await pipeline(Readable.from(lines.map((payload) => ({ payload }))), sink);
  t.is(receipts.length, 1);
  const gz = await env.s3.raw('bucket', receipts[0]!.key);
  t.is(members(gz).length, 1);
  t.true(syncFlushes(gz) >= Math.floor(expected.length / (1024 * 1024)), `${syncFlushes(gz)} pieces for ${expected.length} bytes`);
  t.true((await env.s3.body('bucket', receipts[0]!.key)).equals(expected), 'Node reads it');

  const dir = await mkdtemp(join(tmpdir(), 's3-sink-members-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'object.gz');
  await writeFile(file, gz);
  const readers: [string, string, string[]][] = [
    ['zcat', 'zcat', [file]],
    ['python3', 'python3', ['-c', 'import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())', file]],
    ['python3 zlib', 'python3', ['-c', 'import zlib, sys; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1], "rb").read(), 31))', file]],
    ['java', 'java', [fileURLToPath(new URL('./fixtures/Gunzip.java', import.meta.url)), file]],
  ];
  for (const [name, command, args] of readers) {
    if (!(await available(command))) {
      t.log(`${name} is not installed here: not checked`);
      continue;
    }
    const { stdout } = await run(command, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    t.true(stdout.equals(expected), `${name} reads every line`);
  }
});

test('without parallelGzip, an object is one gzip member', async (t) => {
  const sink = s3Sink({ bucket: 'bucket', prefix: 'single/', s3: env.s3.s3Config, clock: fixedClock() });
  const receipts: Receipt[] = [];
  sink.on('object', (r: Receipt) => receipts.push(r));
  await pipeline(Readable.from(Array.from({ length: 30_000 }, (_, i) => ({ payload: logLine(i) }))), sink);
  const gz = await env.s3.raw('bucket', receipts[0]!.key);
  t.is(members(gz).length, 1);
  t.is(syncFlushes(gz), 0, 'one stream, never flushed');
});
