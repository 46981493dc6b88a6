/**
 * `npx tsx bench/kafka-clients.ts`: the two Node Kafka clients against the
 * tests' real broker (test/helpers/kafka.ts, jars from kafka/fetch), on
 * this machine: kafkajs (pure JavaScript, the baseline) and
 * @confluentinc/kafka-javascript (librdkafka) through its KafkaJS-compatible
 * API.
 *
 * - Records are JSON lines of exactly 200 bytes, no key, no compression,
 *   acks from all replicas (both clients' default).
 * - consume: RECORDS records produced once into a topic of 6 partitions; per
 *   round and client, a new group of one consumer reads them all from the
 *   beginning with eachBatch, automatic commits off, and commits the offsets
 *   it has processed every 200 ms (as a sink that commits what its spool
 *   made durable would) and at the end. The rate is from the first record to
 *   the last; the group join before it is its own row.
 * - produce: RECORDS records sent to a fresh 6-partition topic in send()
 *   calls of 10 000 records, 4 calls in flight.
 * - Each measurement runs in a process of its own (CPU = that process's
 *   user + system time during the phase, librdkafka's threads included);
 *   clients alternate within a round; the table shows medians over rounds.
 *   The broker runs with the JVM's full JIT (not the tests' quick start) and
 *   shares the two cores with the client.
 *
 * The confluent client is not a dependency of s3-sink. Its npm install
 * downloads a prebuilt binary from GitHub, which this machine cannot reach;
 * build it from source in a scratch folder and point here with --confluent:
 *
 *   mkdir /tmp/ckjs && cd /tmp/ckjs && npm init -y
 *   CKJS_LINKING=dynamic npm install @confluentinc/kafka-javascript@1.10.1
 *   npx tsx bench/kafka-clients.ts --confluent /tmp/ckjs/node_modules
 *
 * Without it only kafkajs is measured. Flags: --records N (500000),
 * --rounds N (3), --max-batch N (the confluent consumer's
 * js.consumer.max.batch.size; its default is 32).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { kafkaSkipReason, KAFKA_VERSION, startKafka } from '../test/helpers/kafka.js';

const RECORD_BYTES = 200;
const PARTITIONS = 6;
const SEND_SIZE = 10_000;
const SENDS_IN_FLIGHT = 4;
const COMMIT_EVERY_MS = 200;
const MiB = 1024 * 1024;

type ClientName = 'kafkajs' | 'confluent';

/** The part of the KafkaJS API both clients offer, as used here. */
interface Message {
  value: Buffer | null;
  offset: string;
}
interface EachBatchArgs {
  batch: { topic: string; partition: number; messages: Message[] };
  resolveOffset(offset: string): void;
}
interface ConsumerLike {
  connect(): Promise<void>;
  subscribe(options: { topics: string[]; fromBeginning?: boolean }): Promise<void>;
  run(options: { eachBatchAutoResolve?: boolean; autoCommit?: boolean; eachBatch(args: EachBatchArgs): Promise<void> }): Promise<void>;
  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>;
  disconnect(): Promise<void>;
}
interface ProducerLike {
  connect(): Promise<void>;
  send(record: { topic: string; messages: { value: Buffer }[] }): Promise<unknown>;
  disconnect(): Promise<void>;
}
interface ClientUnderTest {
  producer(): ProducerLike;
  consumer(groupId: string): ConsumerLike;
  version: string;
}

interface Measurement {
  seconds: number;
  cpuSeconds: number;
  records: number;
  bytes: number;
  /** consume: from run() to the first record (the group join and first fetch). */
  firstRecordSeconds?: number;
}

/** 200-byte JSON records like a shipper's; `count` distinct ones, reused in turn. */
function makeValues(count: number): Buffer[] {
  const values: Buffer[] = [];
  for (let n = 0; n < count; n++) {
    const head = JSON.stringify({ ts: new Date(1_780_000_000_000 + n).toISOString(), service: `svc-${n % 8}`, level: n % 10 ? 'info' : 'warn', n, msg: '' });
    const pad = 'x'.repeat(RECORD_BYTES - Buffer.byteLength(head));
    values.push(Buffer.from(head.replace('"msg":""', `"msg":"${pad}"`)));
  }
  if (values.some((v) => v.length !== RECORD_BYTES)) throw new Error('a record is not 200 bytes');
  return values;
}

async function produceAll(producer: ProducerLike, topic: string, records: number): Promise<void> {
  const values = makeValues(50_000);
  let next = 0;
  const sender = async () => {
    while (next < records) {
      const from = next;
      const count = Math.min(SEND_SIZE, records - from);
      next += count;
      await producer.send({ topic, messages: Array.from({ length: count }, (_, i) => ({ value: values[(from + i) % values.length]! })) });
    }
  };
  await Promise.all(Array.from({ length: SENDS_IN_FLIGHT }, sender));
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

// ---- worker: one measurement of one client, in a process of its own ----

async function loadClient(name: ClientName, brokers: string[], confluentDir: string | undefined, maxBatch: number | undefined): Promise<ClientUnderTest> {
  if (name === 'kafkajs') {
    const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.ERROR });
    const version = (createRequire(import.meta.url)('kafkajs/package.json') as { version: string }).version;
    return {
      version,
      producer: () => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }) as unknown as ProducerLike,
      consumer: (groupId) => {
        const consumer = kafka.consumer({ groupId });
        return {
          connect: () => consumer.connect(),
          subscribe: (o) => consumer.subscribe({ topics: o.topics, fromBeginning: true }),
          run: (o) => consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async (args) => o.eachBatch(args) }),
          commitOffsets: (offsets) => consumer.commitOffsets(offsets),
          disconnect: () => consumer.disconnect(),
        };
      },
    };
  }
  const require = createRequire(join(resolve(confluentDir!), 'noop.js'));
  const ckjs = require('@confluentinc/kafka-javascript') as {
    KafkaJS: { Kafka: new (config: object) => { producer(config: object): ProducerLike; consumer(config: object): ConsumerLike }; logLevel: Record<string, number> };
    librdkafkaVersion: string;
  };
  const version = (require('@confluentinc/kafka-javascript/package.json') as { version: string }).version;
  const kafka = new ckjs.KafkaJS.Kafka({ kafkaJS: { clientId: 'bench', brokers, logLevel: ckjs.KafkaJS.logLevel.ERROR } });
  return {
    version: `${version} (librdkafka ${ckjs.librdkafkaVersion})`,
    producer: () => kafka.producer({}),
    consumer: (groupId) => {
      const consumer = kafka.consumer({
        kafkaJS: { groupId, fromBeginning: true, autoCommit: false },
        ...(maxBatch === undefined ? {} : { 'js.consumer.max.batch.size': maxBatch }),
      });
      return {
        connect: () => consumer.connect(),
        subscribe: (o) => consumer.subscribe({ topics: o.topics }),
        run: (o) => consumer.run({ eachBatchAutoResolve: false, eachBatch: o.eachBatch }),
        commitOffsets: (offsets) => consumer.commitOffsets(offsets),
        disconnect: () => consumer.disconnect(),
      };
    },
  };
}

async function measureConsume(client: ClientUnderTest, topic: string, groupId: string, records: number): Promise<Measurement> {
  const consumer = client.consumer(groupId);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let bytes = 0;
  let firstAt = 0;
  let lastCommit = performance.now();
  const processed = new Map<number, string>();
  const commit = async () => {
    const offsets = [...processed].map(([partition, offset]) => ({ topic, partition, offset: String(Number(offset) + 1) }));
    processed.clear();
    lastCommit = performance.now();
    if (offsets.length) await consumer.commitOffsets(offsets);
  };
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  await new Promise<void>((done, fail) => {
    consumer
      .run({
        eachBatchAutoResolve: false,
        autoCommit: false,
        eachBatch: async ({ batch, resolveOffset }) => {
          if (seen === 0) firstAt = performance.now();
          for (const message of batch.messages) bytes += message.value?.length ?? 0;
          seen += batch.messages.length;
          const last = batch.messages[batch.messages.length - 1];
          if (last) {
            resolveOffset(last.offset);
            processed.set(batch.partition, last.offset);
          }
          if (seen >= records) {
            await commit();
            done();
          } else if (performance.now() - lastCommit >= COMMIT_EVERY_MS) {
            await commit();
          }
        },
      })
      .catch(fail);
  });
  const t1 = performance.now();
  const cpu1 = cpuSeconds();
  await consumer.disconnect();
  return { seconds: (t1 - firstAt) / 1000, cpuSeconds: cpu1 - cpu0, records: seen, bytes, firstRecordSeconds: (firstAt - t0) / 1000 };
}

async function measureProduce(client: ClientUnderTest, topic: string, records: number): Promise<Measurement> {
  const producer = client.producer();
  await producer.connect();
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  await produceAll(producer, topic, records);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  await producer.disconnect();
  return { seconds, cpuSeconds: cpu, records, bytes: records * RECORD_BYTES };
}

async function worker(args: string[]): Promise<void> {
  const [name, phase, bootstrap, topic, recordsText, confluentDir, maxBatchText] = args as [ClientName, 'consume' | 'produce', string, string, string, string, string];
  const client = await loadClient(name, [bootstrap], confluentDir || undefined, maxBatchText ? Number(maxBatchText) : undefined);
  const records = Number(recordsText);
  const result = phase === 'consume' ? await measureConsume(client, topic, `bench-${topic}-${name}-${process.pid}`, records) : await measureProduce(client, topic, records);
  process.stdout.write(`${JSON.stringify({ ...result, version: client.version })}\n`);
}

function runWorker(args: string[]): Promise<Measurement & { version: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import=tsx', fileURLToPath(import.meta.url), '--worker', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    child.stdout.on('error', fail);
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`worker ${args.slice(0, 2).join(' ')} exited with ${code}`));
      try {
        done(JSON.parse(out.trim().split('\n').pop()!) as Measurement & { version: string });
      } catch (err) {
        fail(err);
      }
    });
  });
}

// ---- the run ----

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function duBytes(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, entry) => sum + duBytes(join(path, entry)), 0);
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({ options: { records: { type: 'string' }, rounds: { type: 'string' }, confluent: { type: 'string' }, 'max-batch': { type: 'string' } } });
  const records = Number(flags.records ?? 500_000);
  const rounds = Number(flags.rounds ?? 3);
  const confluentDir = flags.confluent ? resolve(flags.confluent) : undefined;
  if (confluentDir && !existsSync(join(confluentDir, '@confluentinc', 'kafka-javascript'))) throw new Error(`no @confluentinc/kafka-javascript in ${confluentDir}`);
  const skip = kafkaSkipReason();
  if (skip) throw new Error(skip);
  const clients: ClientName[] = confluentDir ? ['kafkajs', 'confluent'] : ['kafkajs'];
  if (!confluentDir) console.error('kafka-clients: no --confluent DIR: measuring kafkajs alone (see the head of bench/kafka-clients.ts to build the other)');

  const loadBefore = loadavg()[0]!;
  let t = performance.now();
  const kafka = await startKafka({ quickStart: false, heapMiB: 512 });
  console.error(`kafka-clients: Kafka ${KAFKA_VERSION} broker up in ${((performance.now() - t) / 1000).toFixed(1)} s on ${kafka.bootstrap}`);
  try {
    t = performance.now();
    await kafka.createTopic('consume-source', PARTITIONS);
    const seed = new Kafka({ clientId: 'bench-seed', brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    const producer = seed.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await produceAll(producer as unknown as ProducerLike, 'consume-source', records);
    await producer.disconnect();
    console.error(`kafka-clients: ${records} records of ${RECORD_BYTES} bytes in ${PARTITIONS} partitions, produced in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const admin = seed.admin();
    await admin.connect();

    const results: Record<ClientName, { consume: Measurement[]; produce: Measurement[]; version: string }> = {
      kafkajs: { consume: [], produce: [], version: '' },
      confluent: { consume: [], produce: [], version: '' },
    };
    for (let round = 1; round <= rounds; round++) {
      for (const name of round % 2 ? clients : [...clients].reverse()) {
        const extra = [confluentDir ?? '', flags['max-batch'] ?? ''];
        const consumed = await runWorker([name, 'consume', kafka.bootstrap, 'consume-source', String(records), ...extra]);
        if (consumed.records !== records) throw new Error(`${name} consumed ${consumed.records} records, not ${records}`);
        const topic = `produce-${name}-${round}`;
        await kafka.createTopic(topic, PARTITIONS);
        const produced = await runWorker([name, 'produce', kafka.bootstrap, topic, String(records), ...extra]);
        const ends = await admin.fetchTopicOffsets(topic);
        const stored = ends.reduce((sum, p) => sum + Number(p.high), 0);
        if (stored !== records) throw new Error(`${name} produced ${stored} records, not ${records}`);
        await admin.deleteTopics({ topics: [topic] });
        results[name].consume.push(consumed);
        results[name].produce.push(produced);
        results[name].version = consumed.version;
        console.error(
          `kafka-clients: round ${round} ${name}: consume ${(records / consumed.seconds).toFixed(0)} records/s (join ${consumed.firstRecordSeconds!.toFixed(2)} s, CPU ${consumed.cpuSeconds.toFixed(1)} s), produce ${(records / produced.seconds).toFixed(0)} records/s (CPU ${produced.cpuSeconds.toFixed(1)} s)`,
        );
      }
    }
    await admin.disconnect();

    const figure = (name: ClientName, f: (m: Measurement) => number, phase: 'consume' | 'produce') => median(results[name][phase].map(f));
    const rows: [string, (name: ClientName) => number, number][] = [
      ['consume, records/s', (n) => figure(n, (m) => m.records / m.seconds, 'consume'), 0],
      ['consume, MiB/s', (n) => figure(n, (m) => m.bytes / MiB / m.seconds, 'consume'), 1],
      ['consume, client CPU s per 100k records', (n) => figure(n, (m) => (m.cpuSeconds * 100_000) / m.records, 'consume'), 2],
      ['consume, s to the first record (group join)', (n) => figure(n, (m) => m.firstRecordSeconds!, 'consume'), 2],
      ['produce, records/s', (n) => figure(n, (m) => m.records / m.seconds, 'produce'), 0],
      ['produce, MiB/s', (n) => figure(n, (m) => m.bytes / MiB / m.seconds, 'produce'), 1],
      ['produce, client CPU s per 100k records', (n) => figure(n, (m) => (m.cpuSeconds * 100_000) / m.records, 'produce'), 2],
    ];
    const sizes: Record<ClientName, number> = {
      kafkajs: duBytes(join(fileURLToPath(new URL('../node_modules/kafkajs', import.meta.url)))),
      confluent: confluentDir ? duBytes(confluentDir) : 0,
    };
    console.log(`\nKafka ${KAFKA_VERSION} (one local broker, ${PARTITIONS} partitions), ${records} records of ${RECORD_BYTES} bytes, median of ${rounds} rounds`);
    console.log(`load average (1 min) ${loadBefore.toFixed(2)} before the run, ${loadavg()[0]!.toFixed(2)} after it (the run itself adds about 2)`);
    console.log(`kafkajs ${results.kafkajs.version}${confluentDir ? `; @confluentinc/kafka-javascript ${results.confluent.version}${flags['max-batch'] ? `, js.consumer.max.batch.size ${flags['max-batch']}` : ''}` : ''}\n`);
    const head = confluentDir ? '| figure | kafkajs (baseline) | @confluentinc/kafka-javascript | ratio |\n|---|--:|--:|--:|' : '| figure | kafkajs |\n|---|--:|';
    console.log(head);
    for (const [label, value, digits] of rows) {
      const base = value('kafkajs');
      if (!confluentDir) console.log(`| ${label} | ${base.toFixed(digits)} |`);
      else {
        const other = value('confluent');
        console.log(`| ${label} | ${base.toFixed(digits)} | ${other.toFixed(digits)} | ${(other / base).toFixed(2)} |`);
      }
    }
    if (confluentDir) console.log(`| installed size, MiB (what the client adds to node_modules, its dependencies and build included) | ${(sizes.kafkajs / MiB).toFixed(1)} | ${(sizes.confluent / MiB).toFixed(1)} | ${(sizes.confluent / sizes.kafkajs).toFixed(0)} |`);
  } finally {
    await kafka.stop();
  }
}

if (process.argv[2] === '--worker') await worker(process.argv.slice(3));
else await main();
