import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TestFn } from 'ava';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { kafkaSkipReason, startKafka, type TestKafka } from './kafka.js';
import { startS3, type TestS3 } from './s3.js';

const CHILD = fileURLToPath(new URL('../fixtures/kafka-worker.ts', import.meta.url));

export interface KafkaEnv {
  kafka: TestKafka;
  s3: TestS3;
  client: Kafka;
  admin: Admin;
  /** Idempotent: a send retried across a broker restart must not put a record in the log twice (the tests count each once). */
  producer: Producer;
}

/** A Kafka worker in a process of its own (test/fixtures/kafka-worker.ts). */
export interface WorkerChild {
  process: ChildProcess;
  /** Its signal handlers are set (its first line came). */
  started: boolean;
  /** Resolves once `started`: send SIGTERM after it, or the process dies of the signal. */
  ready: Promise<void>;
  objects: string[];
  recovered: unknown;
  closed: unknown;
  exited: Promise<number | null>;
  stderr: string[];
}

/**
 * What the Kafka test files share: a broker and an s3rver for the file
 * (started before its tests, stopped after), `serial` (skipped, saying why
 * in one line, where there is no Java or no broker jars), and the checks.
 */
export function kafkaKit(test: TestFn) {
  const skip = kafkaSkipReason();
  if (skip !== null) console.log(skip);
  const serial = skip === null ? test.serial : test.serial.skip;
  const env = {} as KafkaEnv;
  if (skip === null) {
    test.before(async () => {
      [env.kafka, env.s3] = await Promise.all([startKafka(), startS3()]);
      env.client = new Kafka({ brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
      env.admin = env.client.admin();
      env.producer = env.client.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
      await Promise.all([env.admin.connect(), env.producer.connect()]);
    });
    test.after.always(async () => {
      await env.producer?.disconnect().catch(() => {});
      await env.admin?.disconnect().catch(() => {});
      await env.kafka?.stop();
      await env.s3?.close();
    });
  }

  const s3Options = (endpoint = env.s3.endpoint) => ({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });

  /** Committed offsets of the group equal the end of every partition (`false` while the group's coordinator moves or loads). */
  async function lagIsZero(groupId: string, topic: string): Promise<boolean> {
    let ends, committed;
    try {
      [ends, committed] = await Promise.all([env.admin.fetchTopicOffsets(topic), env.admin.fetchOffsets({ groupId, topics: [topic] })]);
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable) return false;
      throw err;
    }
    const byPartition = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    return ends.every((end) => byPartition.get(end.partition) === Number(end.high));
  }

  /** Each record `{ n, p }` in S3 under `prefix`: how many times, in which keys, and where a partition's records are out of offset order in an object. */
  async function census(prefix: string): Promise<{ seen: Map<number, number>; keys: string[]; outOfOrder: string[] }> {
    const seen = new Map<number, number>();
    const outOfOrder: string[] = [];
    const keys = await env.s3.keys('bucket', prefix);
    for (const key of keys) {
      const last = new Map<number, number>();
      for (const line of await env.s3.lines('bucket', key)) {
        const { n, p } = JSON.parse(line) as { n: number; p: number };
        seen.set(n, (seen.get(n) ?? 0) + 1);
        if ((last.get(p) ?? -1) >= n) outOfOrder.push(`${key}: ${n} after ${last.get(p)}`);
        last.set(p, n);
      }
    }
    return { seen, keys, outOfOrder };
  }

  /** Every record `n` in [0, count) in S3 under `prefix` exactly once (none missing, none twice, none other), each object in offset order; the keys. */
  async function assertExactlyOnce(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, prefix: string, count: number): Promise<string[]> {
    const { seen, keys, outOfOrder } = await census(prefix);
    const missing = [];
    const twice = [];
    for (let n = 0; n < count; n++) {
      const times = seen.get(n) ?? 0;
      if (times === 0) missing.push(n);
      if (times > 1) twice.push(n);
    }
    const extra = [...seen.keys()].filter((n) => n < 0 || n >= count);
    t.deepEqual(
      { missing: missing.slice(0, 10), twice: twice.slice(0, 10), extra: extra.slice(0, 10), outOfOrder: outOfOrder.slice(0, 3) },
      { missing: [], twice: [], extra: [], outOfOrder: [] },
      `${missing.length} records missing, ${twice.length} written more than once, in ${keys.length} objects`,
    );
    return keys;
  }

  /** A worker in a process of its own: killed with SIGKILL, stopped with SIGSTOP, or SIGTERM (close(), exit 0). */
  function startWorker(settings: Record<string, unknown>): WorkerChild {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ brokers: env.kafka.brokers, endpoint: env.s3.endpoint, windowMs: 2000, idleMs: 300, ...settings })], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    let onStarted = () => {};
    const worker: WorkerChild = {
      process: child,
      started: false,
      ready: new Promise<void>((resolve) => (onStarted = resolve)),
      objects: [],
      recovered: null,
      closed: null,
      stderr: [],
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    };
    child.on('error', () => {});
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const message = JSON.parse(line) as { started?: number; object?: string; recovered?: unknown; closed?: unknown };
      if (message.started) {
        worker.started = true;
        onStarted();
      }
      if (message.object) worker.objects.push(message.object);
      if (message.recovered) worker.recovered = message.recovered;
      if (message.closed) worker.closed = message.closed;
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => worker.stderr.push(line));
    return worker;
  }

  return { env, serial, s3Options, lagIsZero, census, assertExactlyOnce, startWorker };
}
