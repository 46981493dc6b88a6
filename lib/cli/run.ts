import { constants } from 'node:os';
import { finished, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { Receipt } from '../context.js';
import { messageOf, OptionError } from '../errors.js';
import { LineCounter } from '../lines.js';
import { s3Sink, type S3Sink } from '../sink.js';
import { FLAG_OF, UsageError, type RunCommand } from './args.js';
import { checkBucket } from './check.js';
import { startMetricsServer, type MetricsServer } from './metrics.js';
import { Progress, type ProgressOutput } from './progress.js';

export interface Io {
  stderr: ProgressOutput;
  /** Where the signals of `STOP_SIGNALS` arrive (the process). */
  signals: NodeJS.EventEmitter;
  /** Leaves at once (the second signal). */
  exitNow(code: number): void;
}

export interface RunResult {
  code: number;
  receipts: Receipt[];
}

/**
 * Each stops the input and flushes what was read: SIGTERM and SIGINT, SIGHUP
 * (the terminal or the parent went away) and SIGQUIT (Ctrl-\). Left to
 * Node's default, SIGHUP and SIGQUIT ended the process and lost the open
 * window without a word. A second one leaves at once, with 128 + its number.
 */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const;

/**
 * Passes whole lines only, holding back a line not yet finished. When input
 * stops on a signal, that unfinished line is dropped (and reported) rather
 * than written cut short; at the real end of input it passes as the last line.
 */
class LineGate extends Transform {
  readonly #limit: number;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  #stopping = false;
  /** Bytes of an unfinished line dropped at stop. */
  dropped = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const nl = chunk.lastIndexOf(10);
    if (nl === -1) {
      this.#tail.push(chunk);
      this.#tailBytes += chunk.length;
      // A line this long is rejected downstream anyway: let it through rather than hold it.
      if (this.#tailBytes > this.#limit) this.#release();
      callback();
      return;
    }
    this.#release();
    this.push(chunk.subarray(0, nl + 1));
    if (nl + 1 < chunk.length) {
      this.#tail.push(chunk.subarray(nl + 1));
      this.#tailBytes = chunk.length - nl - 1;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#stopping) this.dropped = this.#tailBytes;
    else this.#release();
    callback();
  }

  /** No more input will come: end after what is queued, dropping an unfinished last line. */
  stop(): void {
    this.#stopping = true;
    this.end();
  }

  #release(): void {
    for (const part of this.#tail) this.push(part);
    this.#tail = [];
    this.#tailBytes = 0;
  }
}

/** The client configuration for the flags: `--endpoint` means path style and, unless told, checksums only when required. */
export function clientConfig(cmd: Pick<RunCommand, 'endpoint' | 'region' | 'checksum'>, overrides: S3ClientConfig = {}): S3ClientConfig {
  const config: S3ClientConfig = {};
  if (cmd.endpoint !== undefined) {
    config.endpoint = cmd.endpoint;
    config.forcePathStyle = true;
    config.region = 'us-east-1';
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
  }
  if (cmd.region !== undefined) config.region = cmd.region;
  if (cmd.checksum !== undefined) config.requestChecksumCalculation = cmd.checksum;
  return { ...config, ...overrides };
}

/**
 * Delivers `input` (lines) to S3 as the flags say. Resolves with the exit
 * code: 0 delivered, 1 delivery failed; throws `UsageError` for exit 2.
 * `input` never changes a chunk it has given (stdin, as every Node stream of
 * a file, pipe or socket, makes a new Buffer for each): the sink keeps them
 * (`keepChunks`) rather than copy their lines out.
 */
export async function runSink(cmd: RunCommand, input: Readable, io: Io, overrides: S3ClientConfig = {}): Promise<RunResult> {
  let sink: S3Sink;
  try {
    sink = s3Sink({ ...cmd.sink, keepChunks: cmd.sink.input === 'lines', s3: clientConfig(cmd, overrides) });
  } catch (err) {
    throw usageOf(err);
  }
  const progress = new Progress(io.stderr, () => sink.stats(), cmd.quiet);
  const receipts: Receipt[] = [];
  sink.on('object', (receipt: Receipt) => {
    receipts.push(receipt);
    progress.object(receipt);
  });
  sink.on('rejected', (rejection) => progress.rejected(rejection));
  sink.on('dead-letter', (letter) => progress.deadLetter(letter));
  sink.on('warning', (warning) => progress.warning(warning));
  sink.on('swept', (result) => progress.swept(result));
  sink.on('recovered', (r) => progress.note(`recovered from the spool: ${r.events} events in ${r.batches} batches that an earlier run left, delivered`));

  let metrics: MetricsServer | null = null;
  if (cmd.metrics !== undefined) {
    try {
      metrics = await startMetricsServer(cmd.metrics, () => sink.stats());
    } catch (err) {
      sink.destroy();
      progress.note(`--metrics-listen: cannot listen on ${cmd.metrics.host} port ${cmd.metrics.port}: ${messageOf(err)}`);
      return { code: 1, receipts };
    }
    if (!cmd.quiet) progress.note(`metrics at ${metrics.url}`);
  }
  try {
    return await deliver(cmd, input, io, sink, progress, receipts);
  } finally {
    await metrics?.close();
  }
}

/**
 * Before the sink takes anything: a region must be known (else a usage
 * error), and unless `--no-check` the bucket must answer. `false` when the
 * check failed (said on stderr, the sink destroyed): exit 1.
 */
export async function startChecks(cmd: Pick<RunCommand, 'sink' | 'endpoint' | 'check'>, sink: S3Sink, progress: Progress): Promise<boolean> {
  const client = sink.context.client;
  let region: string;
  try {
    region = await client.config.region();
  } catch {
    sink.destroy();
    throw new UsageError('no AWS region: pass --region or set AWS_REGION (or a region in ~/.aws/config)');
  }
  if (!cmd.check) return true;
  const check = await checkBucket(client, cmd.sink.bucket, cmd.endpoint ?? `S3 in ${region}`, sink.context.options.objectParams.ExpectedBucketOwner);
  if (check) progress.note(check.problem);
  if (!check?.fatal) return true;
  sink.destroy();
  return false;
}

/** An option the flags made that the library refused, as the usage error of its flag. */
export function usageOf(err: unknown): unknown {
  return err instanceof OptionError ? new UsageError(`${FLAG_OF[err.option] ?? err.option}: ${err.message.replace(/^option \S+: /, '')}`) : err;
}

/** The run itself, once the sink (and the metrics server) are up: the check, then stdin to S3. */
async function deliver(cmd: RunCommand, input: Readable, io: Io, sink: S3Sink, progress: Progress, receipts: Receipt[]): Promise<RunResult> {
  if (!(await startChecks(cmd, sink, progress))) return { code: 1, receipts };

  const gate = new LineGate(sink.context.options.maxLineBytes + 2);
  // It fails only on a write after its end, which the signal handler checks for; a slip must not crash the run.
  gate.on('error', () => {});
  // Counted as stdin gives them: events still in stream buffers, not yet parsed, were read too.
  const read = new LineCounter();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      progress.note(`${signal} again: leaving now; ${hardStopNote(sink, progress, read.lines)}`);
      io.exitNow(128 + constants.signals[signal]);
      return;
    }
    input.unpipe(gate);
    // What the input stream has read from the OS but not yet passed on was read too (unless the input has ended already: a read error).
    if (!gate.writableEnded) for (let chunk = input.read() as Buffer | null; chunk !== null; chunk = input.read() as Buffer | null) gate.write(chunk);
    input.destroy();
    if (!gate.writableEnded) gate.stop();
    progress.note(`${signal}: stopped reading stdin; flushing ${sink.stats().openBatches} open batches (send ${signal} again to leave at once)`);
  };
  for (const signal of STOP_SIGNALS) io.signals.on(signal, onSignal);
  // A stdin that fails to read ends the input: what was read is delivered, and the run says why it stopped.
  let inputError: unknown = null;
  input.once('error', (err) => {
    inputError = err;
    gate.stop();
  });
  progress.start();
  input.pipe(gate).pipe(sink);
  input.on('data', (chunk: Buffer) => read.push(chunk));
  input.once('end', () => read.end());
  try {
    await new Promise<void>((resolve, reject) => finished(sink, { readable: false }, (err) => (err ? reject(err) : resolve())));
    if (gate.dropped > 0) progress.note(`input stopped inside a line: its first ${gate.dropped} bytes were read and not delivered`);
    progress.finish();
    // Kept on disk, but not in S3: the caller should know.
    const { deadLettered } = sink.stats();
    if (deadLettered > 0) progress.note(`${deadLettered} batches could not be delivered and are in ${sink.context.spool?.deadDir}`);
    if (inputError !== null) progress.note(`cannot read stdin: ${messageOf(inputError)}`);
    return { code: deadLettered > 0 || inputError !== null ? 1 : 0, receipts };
  } catch (err) {
    progress.finish();
    progress.note(`delivery failed: ${messageOf(err)}`);
    progress.note(progress.undelivered(read.lines));
    if (inputError !== null) progress.note(`cannot read stdin: ${messageOf(inputError)}`);
    return { code: 1, receipts };
  } finally {
    for (const signal of STOP_SIGNALS) io.signals.off(signal, onSignal);
  }
}

/** What a hard stop leaves behind: with a spool, on disk for the next start; without, lost. */
function hardStopNote(sink: S3Sink, progress: Progress, read: number): string {
  const { spool } = sink.context;
  if (!spool) return progress.undelivered(read);
  const s = sink.stats();
  const unspooled = Math.max(0, read - s.rejected - s.spooledEvents);
  return `what is not in S3 yet is in the spool ${spool.dir} and is delivered at the next start (or by s3-sink flush --spool-dir ${spool.dir}); ${unspooled} of ${read} events read had not reached it`;
}
