import { constants } from 'node:os';
import { messageOf, OptionError } from '../errors.js';
import { consumeKafka, type KafkaWorker } from '../kafka/index.js';
import { FLAG_OF, UsageError, type KafkaCommand } from './args.js';
import { checkBucket } from './check.js';
import { startMetricsServer, type MetricsServer } from './metrics.js';
import { Progress } from './progress.js';
import { clientConfig, STOP_SIGNALS, type Io } from './run.js';

/**
 * `s3-sink kafka`: one worker of a consumer group until a signal. The first
 * signal stops reading, delivers (or spools) what was read, commits it and
 * leaves the group (a batch behind the end of the log is left to the group,
 * uncommitted); exit 0. A second one leaves at once: what was read and not
 * committed is read again by the group, into the same objects.
 */
export async function runKafka(cmd: KafkaCommand, io: Io): Promise<number> {
  let worker: KafkaWorker;
  try {
    worker = consumeKafka({
      brokers: cmd.brokers,
      topics: cmd.topics,
      groupId: cmd.groupId,
      fromBeginning: cmd.fromBeginning,
      ...(cmd.idleMs !== undefined ? { idleMs: cmd.idleMs } : {}),
      sink: { ...cmd.run.sink, s3: clientConfig(cmd.run) },
    });
  } catch (err) {
    if (err instanceof OptionError) throw new UsageError(`${FLAG_OF[err.option] ?? `--${err.option}`}: ${err.message.replace(/^option \S+: /, '')}`);
    throw err;
  }
  const { sink } = worker;
  worker.on('error', () => {}); // said below, when `closed` rejects
  const progress = new Progress(io.stderr, () => sink.stats(), cmd.run.quiet);
  sink.on('object', (receipt) => progress.object(receipt));
  sink.on('rejected', (rejection) => progress.rejected(rejection));
  sink.on('dead-letter', (letter) => progress.deadLetter(letter));
  sink.on('warning', (warning) => progress.warning(warning));
  sink.on('recovered', (r) => progress.note(`recovered from the spool: ${r.events} events in ${r.batches} batches that an earlier run left, delivered`));
  let metrics: MetricsServer | null = null;
  const stop = () => worker.close().catch(() => {});
  try {
    if (cmd.run.metrics !== undefined) {
      metrics = await startMetricsServer(cmd.run.metrics, () => sink.stats());
      if (!cmd.run.quiet) progress.note(`metrics at ${metrics.url}`);
    }
    if (cmd.run.check) {
      const check = await checkBucket(sink.context.client, cmd.run.sink.bucket, cmd.run.endpoint ?? 'S3', sink.context.options.objectParams.ExpectedBucketOwner);
      if (check) progress.note(check.problem);
      if (check?.fatal) {
        await stop();
        return 1;
      }
    }
  } catch (err) {
    progress.note(`cannot start: ${messageOf(err)}`);
    await stop();
    await metrics?.close();
    return 1;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      progress.note(`${signal} again: leaving now; what was read and not committed is read again by the group (into the same objects)`);
      io.exitNow(128 + constants.signals[signal]);
      return;
    }
    progress.note(`${signal}: stopped reading; delivering and committing what was read, then leaving the group (send ${signal} again to leave at once)`);
    stop();
  };
  for (const signal of STOP_SIGNALS) io.signals.on(signal, onSignal);
  progress.start();
  try {
    await worker.closed;
    progress.finish();
    return sink.stats().deadLettered > 0 ? 1 : 0;
  } catch (err) {
    progress.finish();
    progress.note(`stopped: ${messageOf(err)}`);
    return 1;
  } finally {
    for (const signal of STOP_SIGNALS) io.signals.off(signal, onSignal);
    await metrics?.close();
  }
}
