/**
 * The Kafka rows of `npm run bench`: a real broker (the tests' helper, with
 * the JVM's own JIT and GC), a topic of 6 partitions holding the `logs`
 * input once (producing it is set-up, not measured; record times spread over
 * ten minutes, two hours ago: a backlog), and `s3-sink kafka`
 * workers (the CLI, each in its own process) that read it all in a fresh
 * consumer group. A run is timed from the workers' start until the group's
 * committed offsets reach the end of every partition (lag 0: every record
 * safe in S3), then the workers are stopped with SIGTERM and must exit 0.
 */
import { spawn } from 'node:child_process';
import { createReadStream, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { kafkaSkipReason, startKafka, type TestKafka } from '../test/helpers/kafka.js';

export interface Measured {
  seconds: number;
  cpuSeconds: number | null;
  mainCpuSeconds: number | null;
  maxRssBytes: number | null;
}

export interface KafkaBench {
  /** Reads the whole topic with `workers` worker processes, under `prefix`. */
  run(workers: number, prefix: string): Promise<Measured>;
  stop(): Promise<void>;
}

const TOPIC = 'bench';
const PARTITIONS = 6;

/** `null` (and why, on stderr) where there is no Java or no broker jars. */
export async function startKafkaBench(input: { path: string; lines: number }, s3: { endpoint: string; bucket: string }, nodeArgs: string[], cli: string): Promise<KafkaBench | null> {
  const skip = kafkaSkipReason();
  if (skip !== null) {
    process.stderr.write(`${skip.replace(/^Kafka tests/, 'Kafka rows')}\n`);
    return null;
  }
  const kafka: TestKafka = await startKafka({ quickStart: false, heapMiB: 768 });
  const client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
  const admin = client.admin();
  await admin.connect();
  await kafka.createTopic(TOPIC, PARTITIONS);
  process.stderr.write(`producing ${input.lines} records into a ${PARTITIONS}-partition topic ... `);
  const producer = client.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  let batch: { value: string; partition: number; timestamp: string }[] = [];
  let n = 0;
  const started = performance.now();
  // A backlog: ten minutes of record time, two hours ago. A run reads it as fast as it can, and no batch
  // waits for its window to end on the wall clock (a live topic's last batch does, then `--idle`).
  const base = Math.floor(Date.now() / 60_000) * 60_000 - 2 * 3600_000;
  const perMinute = Math.ceil(input.lines / 10);
  for await (const line of createInterface({ input: createReadStream(input.path), crlfDelay: Infinity })) {
    batch.push({ value: line, partition: n % PARTITIONS, timestamp: String(base + Math.floor(n / perMinute) * 60_000 + (n % perMinute)) });
    n += 1;
    if (batch.length === 5000) {
      await producer.send({ topic: TOPIC, messages: batch, acks: -1 });
      batch = [];
    }
  }
  if (batch.length > 0) await producer.send({ topic: TOPIC, messages: batch, acks: -1 });
  await producer.disconnect();
  process.stderr.write(`${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  if (n !== input.lines) throw new Error(`produced ${n} records, the input has ${input.lines} lines`);
  let group = 0;
  return {
    async run(workers, prefix) {
      const groupId = `bench-${process.pid}-${group++}`;
      const usageFiles: string[] = [];
      const t0 = performance.now();
      const children = Array.from({ length: workers }, (_, i) => {
        const usage = join(tmpdir(), `s3-sink-bench-kafka-${process.pid}-${groupId}-${i}.json`);
        usageFiles.push(usage);
        const child = spawn(process.execPath, [...nodeArgs, cli, 'kafka', '--brokers', kafka.bootstrap, '--topic', TOPIC, '--group', groupId, '--bucket', s3.bucket, '--prefix', prefix, '--endpoint', s3.endpoint, '--idle', '500ms', '--quiet'], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', S3SINK_BENCH_RUSAGE: usage },
        });
        let stderr = '';
        child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
        const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
        return { child, exited, stderr: () => stderr };
      });
      await untilCaughtUp(admin, groupId, children);
      const seconds = (performance.now() - t0) / 1000;
      for (const { child } of children) child.kill('SIGTERM');
      const codes = await Promise.all(children.map((c) => c.exited));
      if (codes.some((code) => code !== 0)) throw new Error(`kafka workers exited with ${codes.join(', ')}:\n${children.map((c) => c.stderr()).join('\n')}`);
      const usages = usageFiles.map((file) => {
        const usage = JSON.parse(readFileSync(file, 'utf8')) as { cpuSeconds: number; mainCpuSeconds: number | null; maxRssBytes: number };
        rmSync(file, { force: true });
        return usage;
      });
      return {
        seconds,
        cpuSeconds: usages.reduce((sum, u) => sum + u.cpuSeconds, 0),
        mainCpuSeconds: usages.every((u) => u.mainCpuSeconds !== null) ? usages.reduce((sum, u) => sum + (u.mainCpuSeconds as number), 0) : null,
        maxRssBytes: Math.max(...usages.map((u) => u.maxRssBytes)),
      };
    },
    async stop() {
      await admin.disconnect();
      await kafka.stop();
    },
  };
}

/** Polls (every 100 ms: no event says it across processes) until the group's committed offsets are at the end of every partition. */
async function untilCaughtUp(admin: Admin, groupId: string, children: { exited: Promise<number | null>; stderr(): string }[]): Promise<void> {
  const ends = await admin.fetchTopicOffsets(TOPIC);
  let exited = false;
  for (const c of children) void c.exited.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`a kafka worker exited early:\n${children.map((c) => c.stderr()).join('\n')}`);
    try {
      const committed = await admin.fetchOffsets({ groupId, topics: [TOPIC] });
      const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
      if (ends.every((end) => at.get(end.partition) === Number(end.high))) return;
    } catch (err) {
      if (!(err as { retriable?: boolean }).retriable) throw err;
    }
    await delay(100);
  }
}
