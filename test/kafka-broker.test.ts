import test from 'ava';
import { Kafka, logLevel, Partitioners, type Consumer } from 'kafkajs';
import { kafkaSkipReason, startKafka, type TestKafka } from './helpers/kafka.js';
import { eventually } from './helpers/wait.js';

// The real broker of test/helpers/kafka.ts with the client the project uses
// (kafkajs): what the Kafka tests stand on.

const skip = kafkaSkipReason();
if (skip && process.env.CI) {
  // CI fetches the jars first (.ci/run): there a skip would hide the tests.
  test('the Kafka broker can start in CI', (t) => t.fail(`in CI the Kafka tests must run, but: ${skip}`));
} else if (skip) {
  console.log(`kafka-broker: ${skip}`);
}
const kafkaTest = skip ? test.serial.skip : test.serial;

let kafka: TestKafka;
test.before(async () => {
  if (!skip) kafka = await startKafka();
});
test.after.always(async () => {
  await kafka?.stop();
});

const client = () => new Kafka({ clientId: 'kafka-broker-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING });

async function produce(topic: string, from: number, count: number): Promise<void> {
  const producer = client().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, messages: Array.from({ length: count }, (_, i) => ({ key: String(from + i), value: JSON.stringify({ n: from + i }) })) });
  } finally {
    await producer.disconnect();
  }
}

/**
 * Consumes `count` records in group `groupId` from the committed offsets (or
 * the beginning), committing after each batch, as the sink's workers do: no
 * automatic commits. Resolves with each `n` seen, in order of arrival.
 */
async function consume(topic: string, groupId: string, count: number): Promise<number[]> {
  const consumer: Consumer = client().consumer({ groupId });
  await consumer.connect();
  const seen: number[] = [];
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      // A crash kafkajs restarts from (the coordinator still loading the group at the first join) is not the end.
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) reject(payload.error);
      });
      consumer
        .run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            for (const message of batch.messages) {
              seen.push((JSON.parse(message.value!.toString('utf8')) as { n: number }).n);
              resolveOffset(message.offset);
            }
            await consumer.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }]);
            await heartbeat();
            if (seen.length >= count) resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** The group's committed offsets; asked again while its coordinator moves or loads (right after a restart: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS). */
async function committed(topic: string, groupId: string): Promise<Map<number, string>> {
  const admin = client().admin();
  await admin.connect();
  try {
    let found: Map<number, string> | undefined;
    await eventually(async () => {
      try {
        const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
        found = new Map(offsets!.partitions.map((p) => [p.partition, p.offset]));
        return true;
      } catch (err) {
        if ((err as { retriable?: boolean }).retriable) return false;
        throw err;
      }
    }, `the committed offsets of ${groupId}`, 30_000);
    return found!;
  } finally {
    await admin.disconnect();
  }
}

kafkaTest('a real broker: 1000 records into a 3-partition topic come back once each to a consumer group, which commits them', async (t) => {
  await kafka.createTopic('smoke', 3);
  await produce('smoke', 0, 1000);

  const admin = client().admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets('smoke');
  await admin.disconnect();
  t.is(ends.length, 3);
  for (const p of ends) t.true(Number(p.high) > 0, `partition ${p.partition} holds records`);

  const seen = await consume('smoke', 'smoke-group', 1000);
  t.is(seen.length, 1000);
  t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, n) => n));
  t.deepEqual(await committed('smoke', 'smoke-group'), new Map(ends.map((p) => [p.partition, p.high])));
  await t.throwsAsync(kafka.createTopic('smoke', 3), { message: /exists/ });
});

kafkaTest('kill() and restart(): records and committed offsets survive a crash of the broker, on the same port', async (t) => {
  const before = await committed('smoke', 'smoke-group');
  const bootstrap = kafka.bootstrap;
  kafka.kill();
  await kafka.restart();
  t.is(kafka.bootstrap, bootstrap);
  t.deepEqual(await committed('smoke', 'smoke-group'), before);

  // The group goes on from its commits: only the records produced since.
  await produce('smoke', 1000, 30);
  const seen = await consume('smoke', 'smoke-group', 30);
  t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => 1000 + i));
  // A group of its own reads everything from the beginning.
  t.is((await consume('smoke', 'another-group', 1030)).length, 1030);
});
