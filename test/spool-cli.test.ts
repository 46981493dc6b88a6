import test from 'ava';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA, SegmentReader, wholeLines } from '../lib/segment.js';
import { runCli, startCli } from './helpers/cli.js';
import { prng } from './helpers/data.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket']);

/** The events in the segments a killed run left, read as recovery reads them. */
async function spooledEvents(dir: string): Promise<number[]> {
  const events: number[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.seg'))) {
    const reader = new SegmentReader(join(dir, name));
    await reader.open();
    const chunks: Buffer[] = [];
    for (let record = await reader.next(); record !== null; record = await reader.next()) if (record.type === DATA) chunks.push(record.payload);
    if (reader.tail.kind === 'torn') chunks.push(wholeLines(reader.tail.present));
    await reader.close();
    for (const line of Buffer.concat(chunks).toString().split('\n')) if (line) events.push((JSON.parse(line) as { n: number }).n);
  }
  return events;
}

test('the CLI with --spool-dir, killed with SIGKILL at 20 seeded points and restarted: what it spooled is delivered, nothing twice, nothing unsent; flush empties the spool', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-cli-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const random = prng(1234);
  const args = ['--bucket', 'bucket', '--prefix', 'cli-crash/', '--endpoint', env.s3.endpoint, '--spool-dir', dir, '--window', '1s', '--quiet'];
  const spooled = new Set<number>();
  let sent = 0;
  for (let r = 0; r < 20; r++) {
    const cli = startCli(args);
    cli.child.stdin.on('error', () => {}); // the kill closes the pipe under a write
    // Kill at a random moment once it is writing to the spool (a segment exists).
    const killAt = Math.floor(random() * 400);
    let writing: number | null = null;
    await new Promise<void>((resolve) => {
      const feed = async () => {
        if (writing === null && (await readdir(dir)).some((n) => n.endsWith('.seg'))) writing = Date.now();
        if (writing !== null && Date.now() - writing >= killAt) {
          cli.child.kill('SIGKILL');
          resolve();
          return;
        }
        let chunk = '';
        for (const end = sent + 50; sent < end; sent++) chunk += `${JSON.stringify({ n: sent, text: 'spooled line' })}\n`;
        if (cli.child.stdin.write(chunk)) setTimeout(feed, 1);
        else cli.child.stdin.once('drain', feed);
      };
      void feed();
    });
    const { signal } = await cli.exit;
    t.is(signal, 'SIGKILL');
    for (const n of await spooledEvents(dir)) spooled.add(n);
  }
  const flush = await runCli(['flush', '--spool-dir', dir, '--endpoint', env.s3.endpoint]);
  t.is(flush.code, 0, flush.stderr);
  t.regex(flush.stderr, /spool .+ is empty/);

  const seen = new Map<number, number>();
  for (const key of await env.s3.keys('bucket', 'cli-crash/')) {
    for (const line of await env.s3.lines('bucket', key)) {
      const { n } = JSON.parse(line) as { n: number };
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  t.deepEqual([...seen].filter(([, count]) => count > 1), [], 'nothing twice');
  t.deepEqual([...spooled].filter((n) => !seen.has(n)), [], 'everything found in the spool after a kill is in S3');
  t.deepEqual([...seen.keys()].filter((n) => n >= sent), [], 'nothing unsent');
  t.true(spooled.size > 1000, `${spooled.size} events were in the spool at some kill`);
  t.deepEqual((await readdir(dir)).filter((n) => n !== 'dead'), []);
  t.log({ sent, spooledAtKills: spooled.size, inS3: seen.size });
});

test('flush: usage, and an empty spool exits 0', async (t) => {
  const missing = await runCli(['flush']);
  t.is(missing.code, 2);
  t.is(missing.stderr, 's3-sink: missing --spool-dir DIR (the spool to deliver)\n');
  const wrong = await runCli(['flush', '--spool-dir', '/tmp/x', '--bucket', 'b']);
  t.is(wrong.code, 2);
  t.regex(wrong.stderr, /--bucket does not go with the flush command/);
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-flush-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const empty = await runCli(['flush', '--spool-dir', dir, '--endpoint', env.s3.endpoint]);
  t.is(empty.code, 0, empty.stderr);
  t.regex(empty.stderr, /spool .+ is empty/);
  const fsync = await runCli(['--bucket', 'bucket', '--fsync', 'always']);
  t.is(fsync.code, 2);
  t.is(fsync.stderr, 's3-sink: --fsync goes with --spool-dir DIR\n');
});
