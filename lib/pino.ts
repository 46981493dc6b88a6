import build from 'pino-abstract-transport';
import { OptionError } from './errors.js';
import type { SinkOptions } from './options.js';
import { s3Sink, type S3Sink } from './sink.js';

/**
 * `s3-sink/pino`: a pino transport, run in pino's worker thread.
 *
 * ```js
 * pino(pino.transport({ target: 's3-sink/pino', options: { bucket: 'logs', prefix: 'app/', spool: { dir: '/var/lib/app-logs' } } }))
 * ```
 *
 * Each log line is one event, written as pino wrote it. When the process
 * exits (its event loop empties, or it calls `process.exit()`), pino hands
 * the worker every line still in its buffer and then waits, blocking the
 * main thread, for the worker to close: up to 10 s (thread-stream's limit),
 * after which the process exits and the worker with it. So closing goes:
 *
 * 1. the sink's input ends;
 * 2. with a spool, once every line is in the spool (durable per its fsync
 *    policy), S3 gets `deliverOnCloseMs` more; what is not delivered by then
 *    stays in the spool, and the next start of the transport (or
 *    `s3-sink flush --spool-dir`) delivers it under the same keys;
 * 3. without a spool, it waits for S3 until pino stops waiting: what is not
 *    in S3 by then is lost (the README says so).
 */

export interface PinoTransportOptions extends Omit<SinkOptions, 'input' | 'keepChunks' | 'clock' | 'client'> {
  /**
   * With a spool: how long closing waits for S3 once every line is in the
   * spool, before leaving the rest there for the next start. Keep it under
   * pino's 10 s wait at exit, less the time it takes to reach the spool.
   * Default: 2000. Memory: none.
   */
  deliverOnCloseMs?: number;
}

const DEFAULT_DELIVER_ON_CLOSE_MS = 2_000;

export default async function s3SinkTransport(options: PinoTransportOptions = {}) {
  // pino adds its own fields to a transport's options ($context, pinoWillSendConfig): not ours to validate.
  const { deliverOnCloseMs = DEFAULT_DELIVER_ON_CLOSE_MS, ...rest } = options;
  const sinkOptions = Object.fromEntries(Object.entries(rest).filter(([name]) => !name.startsWith('$') && name !== 'pinoWillSendConfig')) as Omit<PinoTransportOptions, 'deliverOnCloseMs'>;
  if (typeof deliverOnCloseMs !== 'number' || !Number.isInteger(deliverOnCloseMs) || deliverOnCloseMs < 0 || deliverOnCloseMs > 60_000) {
    throw new OptionError('deliverOnCloseMs', deliverOnCloseMs, 'an integer from 0 to 60000');
  }
  // Records mode: each line is a string payload, written as it is (pino's lines are one line each).
  const sink = s3Sink({ ...sinkOptions, input: 'records' });
  const lines = new LineCount(sink);
  let failure: Error | null = null;
  // A logger must not take the application down: a failure is said on stderr.
  sink.on('error', (err) => {
    failure = err;
    if (!lines.leftInSpool) process.stderr.write(`s3-sink/pino: ${err.message}\n`);
  });

  return build(
    async (source: AsyncIterable<string>) => {
      for await (const line of source) {
        lines.written += 1;
        // Every line carries an ack so that 'durable' says when all of them are in the spool.
        if (!sink.write({ payload: line, ack: true })) await writable(sink);
        if (failure !== null) return;
      }
    },
    {
      parse: 'lines',
      // The lines go on as they are: no JSON.parse per line.
      parseLine: (line: string) => line,
      metadata: false,
      close: async () => {
        await closeSink(sink, lines, deliverOnCloseMs, sinkOptions.spool !== undefined);
      },
    },
  );
}

/** Lines written to the sink, and how many are not yet in the spool (or rejected). */
class LineCount {
  written = 0;
  settled = 0;
  /** Closing gave up on S3 with every line in the spool (the sink's destroy is no failure then). */
  leftInSpool = false;
  #waiters: (() => void)[] = [];

  constructor(sink: S3Sink) {
    sink.on('durable', (acks: unknown[]) => this.#settle(acks.length));
    sink.on('rejected', () => this.#settle(1));
  }

  /** Resolves once every line written so far is durable or rejected. */
  allSettled(): Promise<void> {
    if (this.settled >= this.written) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #settle(n: number): void {
    this.settled += n;
    if (this.settled < this.written) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Resolves when `sink` wants more, or can take no more (closed, failed): a wait on 'drain' alone would hang on a sink that fails. */
function writable(sink: S3Sink): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      sink.off('error', done);
      resolve();
    };
    sink.once('drain', done);
    sink.once('close', done);
    sink.once('error', done);
  });
}

async function closeSink(sink: S3Sink, lines: LineCount, deliverOnCloseMs: number, spooled: boolean): Promise<void> {
  if (sink.destroyed) return;
  const delivered = new Promise<boolean>((resolve) => {
    sink.once('finish', () => resolve(true));
    sink.once('close', () => resolve(sink.writableFinished));
  });
  sink.end();
  if (!spooled) {
    await delivered;
    return;
  }
  if (await Promise.race([delivered, lines.allSettled().then(() => false)])) return;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), deliverOnCloseMs)));
  const done = await Promise.race([delivered, grace]);
  clearTimeout(timer);
  if (done) return;
  // Every line is in the spool: what S3 has not taken yet waits there for the next start.
  lines.leftInSpool = true;
  sink.destroy();
  await new Promise<void>((resolve) => (sink.closed ? resolve() : sink.once('close', () => resolve())));
}
