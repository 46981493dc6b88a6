import test from 'ava';
import { EventEmitter } from 'node:events';
import { PassThrough, type Writable } from 'node:stream';
import { parseCommand, type RunCommand } from '../lib/cli/args.js';
import { runSink } from '../lib/cli/run.js';
import { startCli } from './helpers/cli.js';
import { noisyLine, prng } from './helpers/data.js';
import { startProxy, type Fault, type Operation } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';
import { eventually } from './helpers/wait.js';

const env = useLocalS3(test, ['bucket']);

const LINES = Array.from({ length: 1000 }, (_, n) => JSON.stringify({ n, msg: `event ${n}`, pad: 'x'.repeat(200) }));
/**
 * More than a pipe holds (64 KiB), after the lines and without a line end:
 * once it is written, the CLI has read every line (and so is past its start,
 * its signal handlers in place); it is an unfinished line when the signal comes.
 */
const TAIL = 'u'.repeat(256 * 1024);

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(text, (err) => (err ? reject(err) : resolve())));
}

/** A store that takes an object and never answers: a flush cannot end. */
const stallUploads = (operation: Operation): Fault => (operation === 'PutObject' ? { kind: 'stall' } : { kind: 'pass' });

/** The lines of every object under `prefix`, in key order. */
async function linesUnder(prefix: string): Promise<string[]> {
  const keys = (await env.s3.keys('bucket', prefix)).sort();
  return (await Promise.all(keys.map((key) => env.s3.lines('bucket', key)))).flat();
}

for (const signal of ['SIGHUP', 'SIGQUIT'] as const) {
  test(`${signal} flushes like SIGTERM: every line read is delivered, the unfinished one reported, exit 0`, async (t) => {
    const run = startCli(['--bucket', 'bucket', '--prefix', `${signal}/`, '--endpoint', env.s3.endpoint, '--window', '1h']);
    await write(run.child.stdin, `${LINES.join('\n')}\n${TAIL}`);
    run.child.kill(signal);
    const { code, signal: killedBy } = await run.exit;
    const stderr = run.stderr();
    t.is(killedBy, null, stderr);
    t.is(code, 0, stderr);
    t.regex(stderr, new RegExp(`^s3-sink: ${signal}: stopped reading stdin; flushing 1 open batches \\(send ${signal} again to leave at once\\)\\n`));
    t.regex(stderr, /s3-sink: input stopped inside a line: its first \d+ bytes were read and not delivered\n/);
    t.regex(stderr, /s3-sink: done: 1000 events in 1 objects/);
    t.deepEqual(await linesUnder(`${signal}/`), LINES);
  });
}

test('a second signal leaves at once with 128 + its number (SIGQUIT: 131), saying what was not delivered', async (t) => {
  const proxy = await startProxy(env.s3.port, { fault: stallUploads });
  t.teardown(() => proxy.close());
  const run = startCli(['--bucket', 'bucket', '--prefix', 'twice/', '--endpoint', proxy.endpoint, '--window', '1h']);
  await write(run.child.stdin, `${LINES.join('\n')}\n${TAIL}`);
  run.child.kill('SIGHUP');
  await eventually(() => proxy.log.some((l) => l.operation === 'PutObject'), 'the flush to start its upload', 30_000);
  run.child.kill('SIGQUIT');
  const { code } = await run.exit;
  t.is(code, 131, run.stderr());
  t.regex(run.stderr(), /s3-sink: SIGQUIT again: leaving now; not delivered: 1000 of 1000 events read /);
});

test('a second signal counts as read the events still waiting in stream buffers, before the sink parsed them', async (t) => {
  // S3 takes the first object and never answers: the 1 MiB budget stays full, parsing stops, and
  // what was read waits in the stream buffers (this input stands for stdin: what it holds was read).
  // The lines are incompressible: compressible ones would fit the budget once compressed into gzip
  // members, and no object would go up before the window's end.
  const random = prng(11);
  const proxy = await startProxy(env.s3.port, { fault: stallUploads });
  t.teardown(() => proxy.close());
  const cmd = parseCommand(['--bucket', 'bucket', '--prefix', 'buffered/', '--endpoint', proxy.endpoint, '--max-buffered', '1MiB', '--retry-attempts', '1', '--quiet']) as RunCommand;
  const input = new PassThrough();
  const count = 20_000;
  // As stdin reads: chunks of up to 64 KiB (300 lines of 200 bytes).
  for (let n = 0; n < count; n += 300) {
    input.write(Array.from({ length: Math.min(300, count - n) }, (_, i) => `${JSON.stringify({ n: n + i, pad: noisyLine(random, 180) })}\n`).join(''));
  }
  const stderr: string[] = [];
  const signals = new EventEmitter();
  const exits: number[] = [];
  const running = runSink(cmd, input, { stderr: { write: (text: string) => stderr.push(text) }, signals, exitNow: (code) => exits.push(code) }, { credentials: env.s3.s3Config.credentials });
  await eventually(() => proxy.log.some((l) => l.operation === 'PutObject'), 'the budget to fill and its first object to stall', 30_000);
  signals.emit('SIGTERM', 'SIGTERM');
  signals.emit('SIGTERM', 'SIGTERM');
  t.deepEqual(exits, [143]);
  t.regex(stderr.join(''), new RegExp(`s3-sink: SIGTERM again: leaving now; not delivered: ${count} of ${count} events read \\(`));
  // Ending the stalled upload (the store goes away) ends the run.
  await proxy.close();
  t.is((await running).code, 1);
});
