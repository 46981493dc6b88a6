import { parseArgs } from 'node:util';
import type { ObjectCannedACL } from '@aws-sdk/client-s3';
import type { SinkOptions } from '../options.js';
import { isLoopback } from '../serve/options.js';
import { parseListen, type ListenAddress } from './metrics.js';
import { policyProblem, type PolicyRequest } from './policy.js';
import { parseDuration, parseSize } from './units.js';

/** A command-line mistake: the CLI prints the message and exits 2. */
export class UsageError extends Error {
  readonly code = 'ERR_S3SINK_USAGE';
}

export interface RunCommand {
  kind: 'run';
  /** Library options from the flags (no `s3`: the CLI builds the client config). */
  sink: SinkOptions & { bucket: string };
  endpoint: string | undefined;
  region: string | undefined;
  checksum: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED' | undefined;
  check: boolean;
  quiet: boolean;
  /** `--metrics-listen`: where to serve `/metrics`. */
  metrics?: ListenAddress | undefined;
}

/** `s3-sink flush`: deliver what a spool holds, then exit. */
export interface FlushCommand {
  kind: 'flush';
  /** The spool, as `--spool-dir DIR` or `--dead-letter-dir DIR` named it for the run. */
  sink: { spool: { dir: string } } | { deadLetter: string };
  /** Also put the spool's dead letters back where they belonged. */
  deadLetters: boolean;
  endpoint: string | undefined;
  region: string | undefined;
  checksum: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED' | undefined;
  quiet: boolean;
}

/** `s3-sink serve`: the sink as an HTTP service. */
export interface ServeCommand extends Omit<RunCommand, 'kind' | 'metrics'> {
  kind: 'serve';
  listen: ListenAddress;
  /** `--token-file`: the file holding the bearer token (read when the server starts). */
  tokenFile: string | undefined;
  ack: 'durable' | 'delivered';
  maxBodyBytes: number | undefined;
  maxPendingBytes: number | undefined;
  readTimeoutMs: number | undefined;
  idempotencyTtlMs: number | undefined;
}

/** `s3-sink kafka`: a worker of a consumer group, with the run's destination, object, batching and spool flags. */
export interface KafkaCommand {
  kind: 'kafka';
  run: RunCommand;
  brokers: string[];
  topics: string[];
  groupId: string;
  fromBeginning: boolean;
  idleMs: number | undefined;
}

export type Command =
  | RunCommand
  | ServeCommand
  | FlushCommand
  | KafkaCommand
  | { kind: 'demo'; quiet: boolean }
  | ({ kind: 'policy' } & PolicyRequest)
  | { kind: 'help' }
  | { kind: 'version' };

export const USAGE = `s3-sink: deliver events from stdin to S3, one event per line, batched per
destination and minute, gzipped, multipart-uploaded.

Usage:
  s3-sink --bucket NAME [--prefix P] [--endpoint URL] [--region R] [--window 60s] [options]
  s3-sink serve --listen 127.0.0.1:8080 --bucket NAME --spool-dir DIR [--token-file F] [--ack durable|delivered]
                                                HTTP: POST /v1/send (JSON records), /v1/lines (ndjson),
                                                answered 200 once every event is durable (or delivered)
  s3-sink flush --spool-dir DIR [--dead-letters] [--endpoint URL]  delivers what a spool holds, exits 0 when empty
  s3-sink kafka --brokers H:P[,H:P] --topic T [--topic T2] --group G --bucket NAME [options]
                                                a worker of a Kafka consumer group: each record's value is
                                                one event; offsets committed once events are safe
  s3-sink demo                                  embedded local S3, no AWS account: runs, shows what landed
  s3-sink policy --bucket NAME --principal ARN [--region R | --partition P] [--sse-kms-key-id ID] [--tag K=V]
                                                prints the minimal bucket policy as JSON
  s3-sink --help | --version

Destination:
  --bucket NAME            bucket to write to (required)
  --prefix P               key prefix; {field} or {a.b} placeholders are filled from
                           each JSON line, e.g. 'app/{service}/' (default: none)
  --dead-letter-prefix P   where lines whose {field} cannot be filled go (default: _unrouted/)
  --endpoint URL           an S3-compatible store; implies path-style addressing
  --region R               AWS region (default: the SDK's chain: AWS_REGION, ~/.aws/config)
  --acl ACL                canned ACL for every object, e.g. bucket-owner-full-control
  --checksum MODE          when_supported (AWS default) or when_required (default with
                           --endpoint: several compatible stores reject CRC32 headers)
  --no-check               skip the check at start that the bucket exists (GetBucketLocation)

Objects:
  --sse MODE               server-side encryption: AES256, aws:kms or aws:kms:dsse
  --sse-kms-key-id ID      the KMS key (id, ARN or alias); implies --sse aws:kms
  --sse-bucket-key         with aws:kms: use an S3 Bucket Key (fewer KMS requests)
  --storage-class CLASS    e.g. STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR (default: the bucket's)
  --tag KEY=VALUE          a tag on every object (repeatable, at most 10)
  --content-type T         the objects' Content-Type (default: application/gzip)
  --content-encoding E     the objects' Content-Encoding, e.g. gzip (default: none)
  --expected-bucket-owner ACCOUNT   fail unless this 12-digit account owns the bucket

Batching and memory:
  --window D               batch window, aligned to the clock (default: 60s)
  --time-field FIELD       batch and key each line by its own time in FIELD (or a.b): epoch s or ms,
                           or ISO 8601 (UTC without an offset); lines without one go by arrival
  --max-object-size N      close an object before its lines pass N, uncompressed (default: 1GiB)
  --part-size N            multipart part size, at least 5MiB (default: 8MiB)
  --queue-size N           parts of one object in flight (default: 4)
  --max-uploads N          objects uploading at once (default: 16)
  --max-buffered N         memory budget for events not yet in S3 (default: 64MiB)
  --max-line N             longest line; longer ones are reported and skipped (default: 1MiB)
  --gzip-level L           0 (store) to 9 (default: 6)
  --no-parallel-gzip       compress each hot destination on one thread of its own (default: in
                           pieces of 1 MiB on every core, one gzip member, cores + 1 pieces at once
                           across all destinations; --parallel-gzip, the default, is accepted)

Durability:
  --spool-dir DIR          write every event to DIR before it is sent; what a crash or kill -9
                           leaves there is delivered at the next start (same keys); S3 outages
                           are retried from disk; given-up batches go to DIR/dead
  --fsync POLICY           interval (default: group commit), always (survives power loss), never
  --fsync-interval D       with --fsync interval: time between commits (default: 200ms)
  --spool-max N            most the spool holds before input waits (default: 8GiB)

Failures:
  --dead-letter-dir DIR    batches whose upload is given up on are written there (same key,
                           .gz, with a .json sidecar) and delivery goes on; exit 1 at the end
  --retry-attempts N       tries per request for failures that can pass (default: 10)
  --retry-base D           first backoff ceiling, doubled per retry, full jitter (default: 200ms)
  --retry-cap D            largest backoff ceiling (default: 20s)
  --request-timeout D      an attempt not answered within D is cut off and retried (default: 2m)
  --sweep-orphans AGE      at start, abort this sink's multipart uploads older than AGE (e.g. 24h)
                           (at least the longest an upload can be live: 96m with the defaults)

Serve (s3-sink serve; every flag above applies too):
  --listen ADDR            PORT, HOST:PORT or [IPv6]:PORT (default: 127.0.0.1:8080); an address
                           other than loopback needs --token-file
  --token-file F           clients must send Authorization: Bearer TOKEN, TOKEN being F's content
  --ack MODE               durable (default: in the spool, needs --spool-dir) or delivered (in S3)
  --max-body N             largest request body, as sent and inflated: 413 past it (default: 10MiB)
  --max-pending N          request bodies held before the sink takes them: 429 past it (default: 64MiB)
  --read-timeout D         a request must arrive whole within D: 408 past it (default: 30s)
  --idempotency-ttl D      how long an answered Idempotency-Key is remembered (default: 1h)
  The spool full: 503 with Retry-After. GET /healthz, /readyz, /metrics. The group commit
  runs every 5ms unless --fsync-interval says otherwise. SIGTERM: stop listening, answer
  the requests under way, flush, exit 0.

Output:
  --quiet                  no progress on stderr (errors, warnings and dead letters still print)
  --metrics-listen ADDR    serve the stats as Prometheus text on http://ADDR/metrics; ADDR is
                           PORT (loopback), HOST:PORT or [IPv6]:PORT, e.g. 9464 or 0.0.0.0:9464

Kafka (s3-sink kafka):
  --brokers LIST           bootstrap brokers, host:port, comma-separated (required)
  --topic T                topic to read (repeatable; required)
  --group G                consumer group: workers of one group share the partitions (required)
  --from-latest            a partition with no committed offset starts at its end (default: its start)
  --idle D                 cut a partition's batch once its window has ended and no record came for D,
                           or once it has been open for --window and D (default: 10s); batches otherwise
                           follow the records' timestamps: --window is a window of record time here

Durations: 500ms, 30s, 1m, 1h. Sizes: bytes, or with K/M/G (powers of 1024; also KiB,
MiB, GiB) or KB/MB/GB (powers of 1000). Credentials come from the AWS SDK's default
chain (environment, ~/.aws/credentials, SSO, instance roles); they are never printed.

SIGTERM, SIGINT, SIGHUP, SIGQUIT or the end of stdin: stop reading, flush every
batch, wait for S3, exit 0. A second signal exits at once (128 + its number: 129,
130, 131, 143) saying what was not delivered.
Exit 2: usage error. Exit 1: delivery failed.`;

const FLAGS = {
  bucket: { type: 'string' },
  prefix: { type: 'string' },
  'dead-letter-prefix': { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  acl: { type: 'string' },
  checksum: { type: 'string' },
  'no-check': { type: 'boolean' },
  sse: { type: 'string' },
  'sse-kms-key-id': { type: 'string' },
  'sse-bucket-key': { type: 'boolean' },
  'storage-class': { type: 'string' },
  tag: { type: 'string', multiple: true },
  'content-type': { type: 'string' },
  'content-encoding': { type: 'string' },
  'expected-bucket-owner': { type: 'string' },
  window: { type: 'string' },
  'time-field': { type: 'string' },
  'max-object-size': { type: 'string' },
  'part-size': { type: 'string' },
  'queue-size': { type: 'string' },
  'max-uploads': { type: 'string' },
  'max-buffered': { type: 'string' },
  'max-line': { type: 'string' },
  'gzip-level': { type: 'string' },
  'parallel-gzip': { type: 'boolean' },
  'no-parallel-gzip': { type: 'boolean' },
  'dead-letter-dir': { type: 'string' },
  'retry-attempts': { type: 'string' },
  'retry-base': { type: 'string' },
  'retry-cap': { type: 'string' },
  'request-timeout': { type: 'string' },
  'sweep-orphans': { type: 'string' },
  'spool-dir': { type: 'string' },
  fsync: { type: 'string' },
  'fsync-interval': { type: 'string' },
  'spool-max': { type: 'string' },
  'dead-letters': { type: 'boolean' },
  principal: { type: 'string' },
  partition: { type: 'string' },
  brokers: { type: 'string' },
  topic: { type: 'string', multiple: true },
  group: { type: 'string' },
  'from-latest': { type: 'boolean' },
  idle: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'metrics-listen': { type: 'string' },
  listen: { type: 'string' },
  'token-file': { type: 'string' },
  ack: { type: 'string' },
  'max-body': { type: 'string' },
  'max-pending': { type: 'string' },
  'read-timeout': { type: 'string' },
  'idempotency-ttl': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** The flag that sets each library option, for error messages. */
export const FLAG_OF: Record<string, string> = {
  bucket: '--bucket',
  prefix: '--prefix',
  deadLetterPrefix: '--dead-letter-prefix',
  windowMs: '--window',
  'time.field': '--time-field',
  maxObjectBytes: '--max-object-size',
  partSize: '--part-size',
  queueSize: '--queue-size',
  maxUploads: '--max-uploads',
  maxBufferedBytes: '--max-buffered',
  maxLineBytes: '--max-line',
  gzipLevel: '--gzip-level',
  acl: '--acl',
  sse: '--sse',
  sseKmsKeyId: '--sse-kms-key-id',
  sseBucketKey: '--sse-bucket-key',
  storageClass: '--storage-class',
  tags: '--tag',
  contentType: '--content-type',
  contentEncoding: '--content-encoding',
  expectedBucketOwner: '--expected-bucket-owner',
  deadLetter: '--dead-letter-dir',
  'retry.attempts': '--retry-attempts',
  'retry.baseMs': '--retry-base',
  'retry.capMs': '--retry-cap',
  requestTimeoutMs: '--request-timeout',
  sweepOrphans: '--sweep-orphans',
  spool: '--spool-dir',
  'spool.dir': '--spool-dir',
  'spool.fsync': '--fsync',
  'spool.fsyncIntervalMs': '--fsync-interval',
  'spool.maxBytes': '--spool-max',
  maxBodyBytes: '--max-body',
  maxPendingBytes: '--max-pending',
  readTimeoutMs: '--read-timeout',
  idempotencyTtlMs: '--idempotency-ttl',
  token: '--token-file',
};

export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw new UsageError(usageMessage(err as Error & { code?: string }));
  }
  const { values, positionals } = parsed;
  onlyOnce(parsed.tokens);
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  const [verb, ...extra] = positionals;
  if (extra.length > 0 || (verb !== undefined && verb !== 'demo' && verb !== 'policy' && verb !== 'flush' && verb !== 'serve' && verb !== 'kafka')) {
    throw new UsageError(`unexpected argument ${JSON.stringify(extra[0] ?? verb)} (commands: serve, kafka, demo, policy, flush; see s3-sink --help)`);
  }
  if (verb !== 'serve') {
    for (const flag of SERVE_ONLY) if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with the serve command`);
  }
  if (verb !== 'kafka') {
    for (const flag of KAFKA_ONLY) if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with the kafka command`);
  }
  if (verb === 'flush') {
    onlyFlags(values, ['spool-dir', 'dead-letter-dir', 'dead-letters', 'endpoint', 'region', 'checksum', 'quiet'], 'flush');
    const spoolDir = values['spool-dir'];
    const deadLetterDir = values['dead-letter-dir'];
    if (!spoolDir && !deadLetterDir) throw new UsageError('missing --spool-dir DIR (the spool to deliver)');
    if (spoolDir && deadLetterDir) throw new UsageError('--spool-dir and --dead-letter-dir: name one (the one the run used)');
    const sink = spoolDir ? { spool: { dir: spoolDir } } : { deadLetter: deadLetterDir as string };
    return { kind: 'flush', sink, deadLetters: values['dead-letters'] ?? false, ...s3Flags(values), quiet: values.quiet ?? false };
  }
  if (values['dead-letters']) throw new UsageError('--dead-letters goes with the flush command');
  if (verb === 'demo') {
    onlyFlags(values, ['quiet'], 'demo');
    return { kind: 'demo', quiet: values.quiet ?? false };
  }
  if (verb === 'policy') {
    onlyFlags(values, ['bucket', 'principal', 'region', 'partition', 'sse-kms-key-id', 'tag'], 'policy');
    if (!values.bucket) throw new UsageError('missing --bucket NAME (the bucket the policy is for)');
    if (!values.principal) throw new UsageError('missing --principal ARN (who runs s3-sink, e.g. arn:aws:iam::123456789012:role/shipper)');
    const request: PolicyRequest = {
      bucket: values.bucket,
      principal: values.principal,
      region: values.region,
      partition: values.partition,
      kmsKey: values['sse-kms-key-id'],
      tagged: tagFlags(values.tag) !== undefined,
    };
    const problem = policyProblem(request);
    if (problem !== null) throw new UsageError(problem);
    return { kind: 'policy', ...request };
  }
  for (const flag of ['principal', 'partition'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with the policy command`);
  }
  if (!values.bucket) throw new UsageError('missing --bucket NAME (the bucket to write to)');
  if (verb === 'serve') return serveCommand(values as FlagValues & { bucket: string });
  const run: RunCommand = {
    kind: 'run',
    ...sinkCommand(values as FlagValues & { bucket: string }, 'lines'),
    metrics: values['metrics-listen'] === undefined ? undefined : listen('--metrics-listen', values['metrics-listen']),
  };
  if (verb === 'kafka') return kafkaCommand(values, run);
  return run;
}

type FlagValues = ReturnType<typeof parseArgs<{ options: typeof FLAGS; allowPositionals: true; strict: true; tokens: true }>>['values'];

/** The flags of the kafka command alone. */
const KAFKA_ONLY = ['brokers', 'topic', 'group', 'from-latest', 'idle'] as const;

/** `s3-sink kafka`: the run's flags (each record is one event), and the group to join. */
function kafkaCommand(values: FlagValues, run: RunCommand): KafkaCommand {
  if (values['time-field'] !== undefined) throw new UsageError("--time-field does not go with the kafka command (a record's time is its Kafka timestamp)");
  if (!values.brokers) throw new UsageError('missing --brokers HOST:PORT[,HOST:PORT] (where the Kafka cluster is)');
  const brokers = values.brokers.split(',').map((b) => b.trim());
  for (const broker of brokers) if (!/^[^\s:]+:\d{1,5}$/.test(broker)) throw new UsageError(`--brokers: ${JSON.stringify(broker)} is not HOST:PORT`);
  if (!values.topic?.length) throw new UsageError('missing --topic T (the topic to read)');
  if (!values.group) throw new UsageError('missing --group G (the consumer group the workers share)');
  const { input: _lines, ...sink } = run.sink;
  return {
    kind: 'kafka',
    run: { ...run, sink },
    brokers,
    topics: values.topic,
    groupId: values.group,
    fromBeginning: !values['from-latest'],
    idleMs: values.idle === undefined ? undefined : duration('--idle', values.idle),
  };
}

/** The flags of the serve command alone. */
const SERVE_ONLY = ['listen', 'token-file', 'ack', 'max-body', 'max-pending', 'read-timeout', 'idempotency-ttl'] as const;

/** `s3-sink serve`: the sink's flags, and how the server listens and answers. */
function serveCommand(values: FlagValues & { bucket: string }): ServeCommand {
  if (values['metrics-listen'] !== undefined) throw new UsageError('--metrics-listen does not go with serve: its metrics are at /metrics on the --listen address');
  const ack = values.ack ?? 'durable';
  if (ack !== 'durable' && ack !== 'delivered') throw new UsageError(`--ack: ${JSON.stringify(ack)} is not durable or delivered`);
  if (ack === 'durable' && values['spool-dir'] === undefined) {
    throw new UsageError('serve answers once events are durable in a spool: give --spool-dir DIR (or --ack delivered to answer once they are in S3)');
  }
  const address = listen('--listen', values.listen ?? '127.0.0.1:8080');
  if (values['token-file'] === undefined && !isLoopback(address.host)) {
    throw new UsageError(`--listen ${values.listen}: not a loopback address, and no --token-file: anyone who can reach it could write to the bucket (give --token-file FILE holding a token clients send as Authorization: Bearer TOKEN)`);
  }
  return {
    ...sinkCommand(values, 'records'),
    kind: 'serve',
    listen: address,
    tokenFile: values['token-file'],
    ack,
    maxBodyBytes: values['max-body'] === undefined ? undefined : size('--max-body', values['max-body']),
    maxPendingBytes: values['max-pending'] === undefined ? undefined : size('--max-pending', values['max-pending']),
    readTimeoutMs: values['read-timeout'] === undefined ? undefined : duration('--read-timeout', values['read-timeout']),
    idempotencyTtlMs: values['idempotency-ttl'] === undefined ? undefined : duration('--idempotency-ttl', values['idempotency-ttl']),
  };
}

/** The sink's options from the flags, and how to reach S3 (shared by the stdin run and serve). */
function sinkCommand(values: FlagValues & { bucket: string }, input: 'lines' | 'records'): Omit<RunCommand, 'kind' | 'metrics'> {
  const sink: SinkOptions & { bucket: string } = { bucket: values.bucket, input };
  if (values.prefix !== undefined) sink.prefix = values.prefix;
  if (values['dead-letter-prefix'] !== undefined) sink.deadLetterPrefix = values['dead-letter-prefix'];
  if (values.window !== undefined) sink.windowMs = duration('--window', values.window);
  if (values['time-field'] !== undefined) sink.time = { field: values['time-field'] };
  if (values['max-object-size'] !== undefined) sink.maxObjectBytes = size('--max-object-size', values['max-object-size']);
  if (values['part-size'] !== undefined) sink.partSize = size('--part-size', values['part-size']);
  if (values['max-buffered'] !== undefined) sink.maxBufferedBytes = size('--max-buffered', values['max-buffered']);
  if (values['max-line'] !== undefined) sink.maxLineBytes = size('--max-line', values['max-line']);
  if (values['queue-size'] !== undefined) sink.queueSize = count('--queue-size', values['queue-size']);
  if (values['max-uploads'] !== undefined) sink.maxUploads = count('--max-uploads', values['max-uploads']);
  if (values['gzip-level'] !== undefined) sink.gzipLevel = count('--gzip-level', values['gzip-level'], 0);
  if (values.acl !== undefined) sink.acl = values.acl as ObjectCannedACL;
  if (values.sse !== undefined) sink.sse = values.sse as NonNullable<SinkOptions['sse']>;
  if (values['sse-kms-key-id'] !== undefined) sink.sseKmsKeyId = values['sse-kms-key-id'];
  if (values['sse-bucket-key']) sink.sseBucketKey = true;
  if (values['storage-class'] !== undefined) sink.storageClass = values['storage-class'].toUpperCase() as NonNullable<SinkOptions['storageClass']>;
  const tags = tagFlags(values.tag);
  if (tags !== undefined) sink.tags = tags;
  if (values['content-type'] !== undefined) sink.contentType = values['content-type'];
  if (values['content-encoding'] !== undefined) sink.contentEncoding = values['content-encoding'];
  if (values['expected-bucket-owner'] !== undefined) sink.expectedBucketOwner = values['expected-bucket-owner'];
  if (values['parallel-gzip'] && values['no-parallel-gzip']) throw new UsageError('--parallel-gzip and --no-parallel-gzip: name one');
  if (values['parallel-gzip']) sink.parallelGzip = true;
  if (values['no-parallel-gzip']) sink.parallelGzip = false;
  if (values['dead-letter-dir'] !== undefined) sink.deadLetter = values['dead-letter-dir'];
  if (values['request-timeout'] !== undefined) sink.requestTimeoutMs = duration('--request-timeout', values['request-timeout']);
  if (values['sweep-orphans'] !== undefined) sink.sweepOrphans = duration('--sweep-orphans', values['sweep-orphans']);
  if (values['spool-dir'] !== undefined) {
    const spool: NonNullable<SinkOptions['spool']> = { dir: values['spool-dir'] };
    if (values.fsync !== undefined) spool.fsync = values.fsync as NonNullable<SinkOptions['spool']>['fsync'];
    if (values['fsync-interval'] !== undefined) spool.fsyncIntervalMs = duration('--fsync-interval', values['fsync-interval']);
    if (values['spool-max'] !== undefined) spool.maxBytes = size('--spool-max', values['spool-max']);
    sink.spool = spool;
  } else if (values.fsync !== undefined || values['fsync-interval'] !== undefined || values['spool-max'] !== undefined) {
    throw new UsageError(`${values.fsync !== undefined ? '--fsync' : values['fsync-interval'] !== undefined ? '--fsync-interval' : '--spool-max'} goes with --spool-dir DIR`);
  }
  const retry: { attempts?: number; baseMs?: number; capMs?: number } = {};
  if (values['retry-attempts'] !== undefined) retry.attempts = count('--retry-attempts', values['retry-attempts']);
  if (values['retry-base'] !== undefined) retry.baseMs = duration('--retry-base', values['retry-base']);
  if (values['retry-cap'] !== undefined) retry.capMs = duration('--retry-cap', values['retry-cap']);
  if (Object.keys(retry).length > 0) sink.retry = retry;
  return { sink, ...s3Flags(values), check: !values['no-check'], quiet: values.quiet ?? false };
}

/** The flags that say which S3 to talk to, checked. */
function s3Flags(values: { endpoint?: string; region?: string; checksum?: string }): Pick<RunCommand, 'endpoint' | 'region' | 'checksum'> {
  let checksum: RunCommand['checksum'];
  if (values.checksum !== undefined) {
    const mode = values.checksum.toLowerCase().replace(/-/g, '_');
    if (mode !== 'when_required' && mode !== 'when_supported') throw new UsageError(`--checksum: ${JSON.stringify(values.checksum)} is not when_supported or when_required`);
    checksum = mode === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  }
  if (values.endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(values.endpoint);
    } catch {
      throw new UsageError(`--endpoint: ${JSON.stringify(values.endpoint)} is not a URL (like http://localhost:9000)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--endpoint: ${JSON.stringify(values.endpoint)} is not an http or https URL`);
  }
  return { endpoint: values.endpoint, region: values.region, checksum };
}

function usageMessage(err: Error & { code?: string }): string {
  const flag = /'(-[^']*)'/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag ?? err.message} (see s3-sink --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return flag ? `${flag.replace(/^(-\w), /, '')} needs a value` : err.message;
    default:
      return err.message;
  }
}

/** `--tag KEY=VALUE`, each given once, as an object; `undefined` when there is none. */
function tagFlags(flags: string[] | undefined): Record<string, string> | undefined {
  if (flags === undefined) return undefined;
  const tags: Record<string, string> = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq < 1) throw new UsageError(`--tag: ${JSON.stringify(flag)} is not KEY=VALUE`);
    const key = flag.slice(0, eq);
    if (Object.hasOwn(tags, key)) throw new UsageError(`--tag: the key ${JSON.stringify(key)} is given twice`);
    tags[key] = flag.slice(eq + 1);
  }
  return tags;
}

/** A flag given twice is a mistake (parseArgs would silently keep the last value); `multiple` flags are the exception. */
function onlyOnce(tokens: readonly { kind: string; name?: string; value?: string | undefined }[]): void {
  const seen = new Map<string, string | undefined>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name === undefined) continue;
    if ((FLAGS as Record<string, { multiple?: boolean }>)[token.name]?.multiple) continue;
    if (seen.has(token.name)) {
      const first = seen.get(token.name);
      const values = first === undefined ? '' : ` (${JSON.stringify(first)}, then ${JSON.stringify(token.value)})`;
      throw new UsageError(`--${token.name} is given twice${values}: name it once`);
    }
    seen.set(token.name, token.value);
  }
}

function onlyFlags(values: Record<string, unknown>, allowed: string[], command: string): void {
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && !allowed.includes(name)) throw new UsageError(`--${name} does not go with the ${command} command`);
  }
}

function listen(flag: string, text: string): ListenAddress {
  const address = parseListen(text);
  const like = flag === '--listen' ? '8080 or 127.0.0.1:8080' : '9464 or 0.0.0.0:9464';
  if (address === null) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not PORT, HOST:PORT or [IPv6]:PORT (like ${like})`);
  return address;
}

function duration(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a duration (like 500ms, 30s, 1m, 1h)`);
  return ms;
}

function size(flag: string, text: string): number {
  const bytes = parseSize(text);
  if (bytes === null) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a size (like 65536, 64KiB, 8MiB, 1GiB)`);
  return bytes;
}

function count(flag: string, text: string, min = 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a whole number of at least ${min}`);
  return n;
}
