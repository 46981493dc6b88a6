/** The Kafka input: `import { consumeKafka } from 's3-sink/kafka'`. */
export { consumeKafka, KafkaSinkError, KafkaWorker, type KafkaSinkOptions, type KafkaStats } from './worker.js';
export { batchIdentifier, decodeCuts, encodeCuts, PartitionBatcher, type LogBatch, type LogRecord } from './batcher.js';
