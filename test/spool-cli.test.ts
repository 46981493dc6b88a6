import test from 'ava';
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA, SegmentReader, wholeLines } from '../lib/segment.js';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { runCli, startCli } from './helpers/cli.js';
import { prng } from './helpers/data.js';
import { startProxy } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

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
    // What earlier runs left: a kill counts from this run's own first segment, not from theirs (else, with
    // a slow start, every run after the first could be killed before it has read anything).
    const left = new Set(await readdir(dir));
    const cli = startCli(args);
    cli.child.stdin.on('error', () => {}); // the kill closes the pipe under a write
    // Kill at a random moment once it is writing to the spool (a segment of its own exists).
    const killAt = Math.floor(random() * 400);
    let writing: number | null = null;
    await new Promise<void>((resolve) => {
      const feed = async () => {
        if (writing === null && (await readdir(dir)).some((n) => n.endsWith('.seg') && !left.has(n))) writing = Date.now();
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

test('a hard stop with --spool-dir (a second SIGTERM while S3 never answers) says everything read is in the spool; flush then delivers all of it', async (t) => {
  const proxy = await startProxy(env.s3.port, { fault: (operation) => (operation === 'PutObject' ? { kind: 'stall' } : { kind: 'pass' }) });
  t.teardown(() => proxy.close());
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-hard-stop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lines = Array.from({ length: 1000 }, (_, n) => JSON.stringify({ n, text: 'kept through a hard stop' }));
  const cli = startCli(['--bucket', 'bucket', '--prefix', 'hard-stop/', '--endpoint', proxy.endpoint, '--spool-dir', dir, '--window', '1h']);
  cli.child.stdin.write(`${lines.join('\n')}\n`);
  // Nothing announces it: read the spool as recovery would until every line is there.
  await eventually(async () => readdirSync(dir).some((n) => n.endsWith('.seg')) && (await spooledEvents(dir)).length === 1000, 'every line in the spool', 30_000);
  cli.child.kill('SIGTERM'); // flush: its PutObject never answers
  await eventually(() => proxy.log.some((l) => l.operation === 'PutObject'), 'the stalled upload', 30_000);
  cli.child.kill('SIGTERM');
  const { code } = await cli.exit;
  t.is(code, 143);
  t.regex(cli.stderr(), new RegExp(`SIGTERM again: leaving now; what is not in S3 yet is in the spool ${dir} and is delivered at the next start \\(or by s3-sink flush --spool-dir ${dir}\\); 0 of 1000 events read had not reached it`));
  const flush = await runCli(['flush', '--spool-dir', dir, '--endpoint', env.s3.endpoint]);
  t.is(flush.code, 0, flush.stderr);
  t.regex(flush.stderr, /recovered from .+: 1000 events in 1 batches, delivered/);
  const keys = await env.s3.keys('bucket', 'hard-stop/');
  t.is(keys.length, 1);
  t.deepEqual(await env.s3.lines('bucket', keys[0]!), lines);
});

test('flush --dead-letters puts a dead letter back once its bucket exists, and the spool is then empty', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-dead-flush-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lines = Array.from({ length: 300 }, (_, n) => JSON.stringify({ n, text: 'waited in dead/' }));
  const failed = await runCli(['--bucket', 'late-bucket', '--prefix', 'later/', '--endpoint', env.s3.endpoint, '--spool-dir', dir, '--no-check'], `${lines.join('\n')}\n`);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /dead letter: s3:\/\/late-bucket\/later\/\S+\.gz \(300 events\) written to .+\/dead\/late-bucket\/later\/.+: NoSuchBucket/);
  const without = await runCli(['flush', '--spool-dir', dir, '--endpoint', env.s3.endpoint]);
  t.is(without.code, 1, 'a dead letter is still there');
  t.regex(without.stderr, /still holds 0 batches and 1 dead letters in .+ \(--dead-letters delivers those\)/);
  await env.s3.client.send(new CreateBucketCommand({ Bucket: 'late-bucket' }));
  const flush = await runCli(['flush', '--spool-dir', dir, '--dead-letters', '--endpoint', env.s3.endpoint]);
  t.is(flush.code, 0, flush.stderr);
  t.regex(flush.stderr, /dead letter delivered: s3:\/\/late-bucket\/later\/\S+ \(300 events\)/);
  const keys = await env.s3.keys('late-bucket', 'later/');
  t.is(keys.length, 1);
  t.deepEqual(await env.s3.lines('late-bucket', keys[0]!), lines);
  t.deepEqual((await readdir(join(dir, 'dead'), { recursive: true })).filter((n) => n.endsWith('.gz') || n.endsWith('.json')), []);
});
