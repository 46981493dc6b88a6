import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { constants } from 'node:os';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { messageOf } from '../errors.js';
import { createServer, type SinkServer } from '../serve/server.js';
import { SpoolLockedError } from '../spool.js';
import { UsageError, type ServeCommand } from './args.js';
import { Progress } from './progress.js';
import { clientConfig, startChecks, usageOf, type Io } from './run.js';

/** The signals that stop the server; a second one leaves at once with 128 + its number (as the stdin run). */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const;

/**
 * `s3-sink serve`: the sink behind an HTTP server until a signal. On the
 * first: stop taking requests, answer those under way, flush, exit 0 (1 when
 * delivery failed or batches went to dead letters). Request bodies never
 * reach stderr: rejected events are told to their client, and only counted here.
 */
export async function runServe(cmd: ServeCommand, io: Io, overrides: S3ClientConfig = {}): Promise<number> {
  const token = cmd.tokenFile === undefined ? undefined : await readToken(cmd.tokenFile);
  let server: SinkServer;
  try {
    server = createServer({
      sink: { ...cmd.sink, s3: clientConfig(cmd, overrides) },
      ack: cmd.ack,
      ...(token === undefined ? {} : { token }),
      ...(cmd.maxBodyBytes === undefined ? {} : { maxBodyBytes: cmd.maxBodyBytes }),
      ...(cmd.maxPendingBytes === undefined ? {} : { maxPendingBytes: cmd.maxPendingBytes }),
      ...(cmd.readTimeoutMs === undefined ? {} : { readTimeoutMs: cmd.readTimeoutMs }),
      ...(cmd.idempotencyTtlMs === undefined ? {} : { idempotencyTtlMs: cmd.idempotencyTtlMs }),
      // Checked below, before listening: a missing bucket is exit 1, not a server that is never ready.
      checkBucket: false,
    });
  } catch (err) {
    if (err instanceof SpoolLockedError) {
      io.stderr.write(`s3-sink: ${err.message}\n`);
      return 1;
    }
    throw usageOf(err);
  }
  const { sink } = server;
  const progress = new Progress(io.stderr, () => sink.stats(), cmd.quiet);
  sink.on('object', (receipt) => progress.object(receipt));
  sink.on('dead-letter', (letter) => progress.deadLetter(letter));
  sink.on('warning', (warning) => progress.warning(warning));
  sink.on('swept', (result) => progress.swept(result));
  sink.on('recovered', (r) => progress.note(`recovered from the spool: ${r.events} events in ${r.batches} batches that an earlier run left, delivered`));
  if (!(await startChecks(cmd, sink, progress))) return 1;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cmd.listen.port, cmd.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    progress.note(`cannot listen on ${cmd.listen.host} port ${cmd.listen.port}: ${messageOf(err)}`);
    sink.destroy();
    return 1;
  }
  server.on('error', (err) => progress.note(`server: ${messageOf(err)}`));
  const { port, family } = server.address() as AddressInfo;
  const url = `http://${family === 'IPv6' ? `[${cmd.listen.host}]` : cmd.listen.host}:${port}`;
  progress.note(`listening on ${url}: POST /v1/send, /v1/lines; GET /healthz, /readyz, /metrics (answers once events are ${cmd.ack})`);

  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      const { spool } = sink.context;
      const kept = spool ? `what is not in S3 yet is in the spool ${spool.dir} and is delivered at the next start` : `${sink.stats().openBatches} batches were not delivered`;
      progress.note(`${signal} again: leaving now; ${kept}`);
      io.exitNow(128 + constants.signals[signal]);
      return;
    }
    progress.note(`${signal}: no new requests; answering those under way, then flushing (send ${signal} again to leave at once)`);
    stop();
  };
  for (const signal of STOP_SIGNALS) io.signals.on(signal, onSignal);
  // A sink that fails on its own (a permanent error without a spool) stops the server too.
  sink.once('error', () => stop());
  try {
    await stopped;
    await server.shutdown();
    progress.finish();
    const { deadLettered } = sink.stats();
    if (deadLettered > 0) progress.note(`${deadLettered} batches could not be delivered and are in ${sink.context.spool?.deadDir}`);
    return deadLettered > 0 ? 1 : 0;
  } catch (err) {
    progress.finish();
    progress.note(`delivery failed: ${messageOf(err)}`);
    return 1;
  } finally {
    for (const signal of STOP_SIGNALS) io.signals.off(signal, onSignal);
  }
}

async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--token-file: cannot read ${file}: ${messageOf(err)}`);
  }
  // The token's rules (length, characters) are the server's; the line break an editor adds is not part of it.
  return text.trim();
}
