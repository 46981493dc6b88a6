import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Transform, type Duplex, type TransformCallback, type Writable } from 'node:stream';
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type KafkaConfig, type KafkaMessage } from 'kafkajs';
import type { BytesPiece } from '../batch.js';
import { SinkContext, type SinkStats } from '../context.js';
import type { DeadLetter } from '../deadLetter.js';
import { messageOf, OptionError, S3SinkError } from '../errors.js';
import { compressorBytes, decide } from '../ledger.js';
import type { SinkOptions } from '../options.js';
import { Router, type RoutedEvent } from '../route.js';
import { composeSink, type S3Sink } from '../sink.js';
import { gzip } from '../stages/gzip.js';
import { spool } from '../stages/spool.js';
import { upload } from '../stages/upload.js';
import { STREAM_AFTER_BYTES } from '../stages/window.js';
import { whenWritable } from '../streams.js';
import { decodeCuts, encodeCuts, MAX_METADATA_BYTES, PartitionBatcher, piecesOf, type LogBatch, type LogRecord } from './batcher.js';
import { Frontier, type Pending } from './frontier.js';

export interface KafkaSinkOptions {
  /** `host:port` of one or more brokers. */
  brokers: string[];
  topics: string[];
  /** The consumer group: its members share the topics' partitions, and its committed offsets say what is safe. */
  groupId: string;
  clientId?: string;
  /** The sink's options (bucket, prefix template, spool, ...). `windowMs` is a window of the records' timestamps here. */
  sink?: SinkOptions;
  /** Where a partition with no committed offset starts: its earliest record (default) or only records that come after. */
  fromBeginning?: boolean;
  /**
   * A partition whose batch's window has ended on the wall clock and that has
   * had no record for this long has its batch cut (a recorded cut), so that
   * the last records of a quiet partition reach S3; so has a batch open for
   * longer than `windowMs` and this (a record stamped ahead of the clock).
   * Default 10 000 ms.
   */
  idleMs?: number;
  /** A log batch closes before it would hold more line bytes than this. Default: `maxBufferedBytes / 2`. Keep it the same across a group and its restarts. */
  maxBatchBytes?: number;
  /** The group's session timeout (ms). Default 30 000. */
  sessionTimeoutMs?: number;
  /** More kafkajs client settings (`ssl`, `sasl`, `connectionTimeout`, ...). */
  client?: Omit<KafkaConfig, 'brokers' | 'clientId'>;
}

/** Counters of the Kafka input (beside the sink's). */
export interface KafkaStats {
  /** Records read from Kafka (those read again after a rebalance or a restart count again). */
  records: number;
  /** Log batches closed by the log's own rules (a later window, a size). */
  batches: number;
  /** Log batches cut (idle partition, full budget, stopping), each recorded with the committed offset first. */
  cuts: number;
  /** Offset commits that succeeded. */
  commits: number;
  /** Partitions started again from their committed offset because a cut could not be recorded (each also a `'warning'` S3SINK_KAFKA_RESET); a rebalance, which starts every partition again, is not counted. */
  resets: number;
}

/** Errors of the Kafka input: `ERR_S3SINK_KAFKA`. */
export class KafkaSinkError extends S3SinkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_S3SINK_KAFKA', message, options);
  }
}

interface Committed {
  offset: number;
  metadata: string;
}

/** One assigned partition, from its assignment until the next rebalance. */
class PartitionState {
  readonly id: string;
  readonly batcher: PartitionBatcher;
  readonly frontier = new Frontier();
  /** Closed batches go into the chain in order, each after the one before (a cut waits for its record). */
  handoffs: Promise<void> = Promise.resolve();
  committed: Committed;
  lastRecordAt = 0;
  /** When (wall clock) its open batch opened. */
  openSince = 0;
  /** A record of it waits for room in the budget: the partition is not idle. */
  waiting = false;
  /** The end of its log (the high watermark) at its latest fetch. */
  end = 0;
  /** Superseded (a rebalance, a failed commit): nothing more of it goes into the chain or is committed. */
  dead = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    /** The worker's generation (rebalances so far) when the partition was given to it. */
    readonly generation: number,
    batcher: PartitionBatcher,
    committed: Committed,
  ) {
    this.id = `${topic}\u0000${partition}`;
    this.batcher = batcher;
    this.committed = committed;
  }

  commitOffset(): number {
    return this.frontier.offset(this.batcher.open, this.batcher.next, this.committed.offset);
  }
}

/** An object in the chain, until it leaves it (delivered, dead-lettered or fenced). */
interface InChain {
  /** The batches waiting for it to be safe (the one that put it there, and any that met it again). */
  readonly waiting: Set<Pending>;
  safe: boolean;
  /** `topic\0partition`. */
  readonly partition: string;
  /** Its log batch's offsets. */
  readonly first: number;
  readonly last: number;
  /** The worker's generation when its records were read: after a rebalance, the partition may be another worker's. */
  readonly generation: number;
  /** Not to be written (see #mayPublish): it is on its way out of the chain. */
  fenced: boolean;
  /** Resolves when it has left the chain. */
  readonly gone: Promise<void>;
  readonly leave: () => void;
}

/** A log batch whose objects are in the chain, not all delivered yet: its offsets (its lines are the chain's). */
interface Chained {
  readonly first: number;
  readonly last: number;
  /** Keys of its objects still in the chain. */
  readonly keys: Set<string>;
}

const DEFAULT_IDLE_MS = 10_000;
/**
 * A fetch's records are decoded into objects at once (kafkajs): a smaller
 * fetch than kafkajs's 10 MB holds less of them. Measured (bench, a 200 MiB
 * backlog, one worker): peak RSS 329 MiB with 10 MB, 241 MiB with 2 MiB,
 * and no slower (500 000 records to lag 0: 6.2 s with 10 MB, 4.9 s with 2 MiB).
 */
const FETCH_MAX_BYTES = 2 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/**
 * S3 sink workers in a Kafka consumer group: `consumeKafka(options)` joins the
 * group, reads the partitions it is given, and delivers each record's value as
 * one event (one line). Offsets are committed only up to where every record is
 * safe: in S3, or durable in the spool when the sink has one. See batcher.ts
 * for how batches follow the log, which is what makes a record read twice
 * (after a crash, or by a new owner after a rebalance) land in the same object
 * with the same neighbours.
 */
export function consumeKafka(options: KafkaSinkOptions): KafkaWorker {
  return new KafkaWorker(options);
}

export interface KafkaWorker {
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class KafkaWorker extends EventEmitter {
  readonly sink: S3Sink;
  /** Resolves once `close()` is done: every record read is safe, its offset committed, the group left. Rejects with what stopped the worker. */
  readonly closed: Promise<void>;
  readonly #o: Resolved;
  readonly #ctx: SinkContext;
  readonly #router: Router;
  readonly #kafka: Kafka;
  readonly #consumer: Consumer;
  readonly #admin: Admin;
  readonly #durable: boolean;
  /** The prefix template has `{kafka:...}` placeholders. */
  readonly #withMeta: boolean;
  readonly #stats: KafkaStats = { records: 0, batches: 0, cuts: 0, commits: 0, resets: 0 };
  /** Assigned partitions by `topic\0partition`, or a promise while their committed offsets are read. */
  readonly #states = new Map<string, PartitionState | Promise<PartitionState>>();
  /**
   * Object keys in the chain, until delivered (or dead-lettered): the batches
   * waiting for them to be safe, and whether they are (with a spool, sealed).
   * A batch read twice while its object is still in the chain never enters it
   * again: one key, one upload, one segment.
   */
  readonly #inflight = new Map<string, InChain>();
  /**
   * By partition (`topic\0partition`): the highest offset this worker has
   * sent in a commit, whether or not it knows the commit was made (a reply
   * lost, or a rebalance while kafkajs retried it): every record below it is
   * safe (delivered, or sealed in the spool), and may be what the group's
   * offset says, so nothing below it is ever fenced (its segment would be
   * deleted while no reader reads its records again).
   */
  readonly #sentPast = new Map<string, number>();
  /**
   * The same batches by partition (`topic\0partition`) and first offset. A
   * partition read again (after a rebalance or a reset) while some of its
   * batches are still here passes over their records instead of batching
   * them again: a batch read again could end elsewhere (a cut for room in the
   * budget), and then its neighbours would overlap the objects on their way.
   */
  readonly #chained = new Map<string, Map<number, Chained>>();
  #generation = 0;
  /**
   * Until when (`performance.now()`) the group keeps this member in its
   * generation even if it heard nothing more from it: a session after the
   * heartbeat before the last one that succeeded (the last one was sent
   * after that one returned, and the broker counts the session from what
   * it receives). Past it the member may have been evicted unawares (a
   * process stopped, a long pause) and its partitions given to another.
   */
  #leaseUntil = 0;
  #lastBeat = 0;
  /** Woken at each heartbeat that succeeds and at each rebalance. */
  #beatWaiters: (() => void)[] = [];
  #commits: Promise<void> = Promise.resolve();
  /** Commits kafkajs made (its COMMIT_OFFSETS event): `commitOffsets()` resolves without committing while its runner is not running (a restart after a crash). */
  #commitsMade = 0;
  #queued: Promise<void> | null = null;
  #stopping = false;
  #failed: Error | null = null;
  #closing: Promise<void> | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #running = 0;
  #runningIdle: (() => void)[] = [];
  #settledWaiters: (() => void)[] = [];
  #resolveClosed!: () => void;
  #rejectClosed!: (err: Error) => void;

  constructor(options: KafkaSinkOptions) {
    super();
    const o = validate(options);
    this.#ctx = new SinkContext({ ...options.sink, input: 'records' }, { kafkaRecords: true });
    const resolved = this.#ctx.options;
    this.#o = { ...o, maxBatchBytes: options.maxBatchBytes ?? Math.max(1, Math.min(resolved.maxObjectBytes, Math.floor(resolved.maxBufferedBytes / 2))) };
    this.#router = new Router(this.#ctx);
    this.#durable = this.#ctx.spool !== null;
    this.#withMeta = (resolved.prefixTemplate?.meta.length ?? 0) > 0;
    // Batches arrive joined (see Share in batcher.ts): the chain starts at the spool.
    const stages: (Duplex | Writable)[] = [spool(this.#ctx)];
    if (this.#durable) stages.push(new SealWatch((key) => this.#safe(key, false)));
    this.sink = composeSink(this.#ctx, [...stages, gzip(this.#ctx), upload(this.#ctx)]);
    this.sink.on('error', (err) => this.#fail(err));
    this.sink.on('delivered', ({ key }) => this.#safe(key, true));
    this.sink.on('fenced', ({ key }) => this.#left(key));
    this.#ctx.fence = { mayPublish: (key) => this.#mayPublish(key), holds: (key) => this.#holds(key) };
    this.sink.on('dead-letter', (letter: DeadLetter) => {
      if (letter.path !== null) this.#safe(letter.key, true);
      else this.#fail(new KafkaSinkError(`s3://${letter.bucket}/${letter.key} could not be delivered and there is no place to keep it (${letter.error}): offsets stay where they are, so that the records are read again`));
    });
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(() => {}); // observed through close(), 'error', or the caller's own await
    this.#kafka = new Kafka({
      ...options.client,
      clientId: this.#o.clientId,
      brokers: this.#o.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 10_000, ...options.client?.retry },
    });
    // A fetch with nothing to read (or every partition paused) waits maxWaitTimeInMs before the heartbeat that
    // follows it: at most a sixth of the session, so that the lease (see #leaseUntil) is renewed well before it ends.
    this.#consumer = this.#kafka.consumer({ groupId: this.#o.groupId, maxBytes: FETCH_MAX_BYTES, maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION, maxWaitTimeInMs: Math.min(5000, Math.floor(this.#o.sessionTimeoutMs / 6)), sessionTimeout: this.#o.sessionTimeoutMs, heartbeatInterval: Math.max(100, Math.floor(this.#o.sessionTimeoutMs / 10)), allowAutoTopicCreation: false, retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 10_000 } });
    this.#admin = this.#kafka.admin();
    // Before this member joins the group again (after which another may own its partitions), and after it has joined.
    this.#consumer.on(this.#consumer.events.REBALANCING, () => this.#rebalanced());
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, ({ payload }) => {
      this.#rebalanced();
      // The session starts no earlier than the join request went out.
      this.#lastBeat = performance.now() - payload.duration;
      this.#leaseUntil = this.#lastBeat + this.#o.sessionTimeoutMs;
    });
    this.#consumer.on(this.#consumer.events.COMMIT_OFFSETS, () => {
      this.#commitsMade += 1;
    });
    this.#consumer.on(this.#consumer.events.HEARTBEAT, () => {
      this.#leaseUntil = this.#lastBeat + this.#o.sessionTimeoutMs;
      this.#lastBeat = performance.now();
      for (const wake of this.#beatWaiters.splice(0)) wake();
    });
    // A fetch of only control records or aborted ones never reaches eachBatch: its offsets are passed here.
    this.#consumer.on(this.#consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize === 0 && payload.firstOffset !== null) this.#passed(payload.topic, payload.partition, Number(payload.firstOffset), Number(payload.lastOffset), Number(payload.highWatermark));
    });
    // A crash (kafkajs leaves the group, and joins again if it restarts) and a stop leave without a rebalance
    // this member takes part in: the partitions may be another's at once.
    this.#consumer.on(this.#consumer.events.STOP, () => this.#leftGroup());
    this.#consumer.on(this.#consumer.events.CRASH, (event) => {
      this.#leftGroup();
      if (!event.payload.restart) this.#fail(new KafkaSinkError(`the Kafka consumer stopped: ${messageOf(event.payload.error)}`, { cause: event.payload.error }));
    });
    this.#start().catch((err: unknown) => this.#fail(err as Error));
  }

  stats(): KafkaStats & SinkStats {
    return { ...this.sink.stats(), ...this.#stats };
  }

  /**
   * Stops reading, delivers (or spools) what was read and commits it, and
   * leaves the group. An open batch is cut when it reaches the end of the
   * log; one behind it stays uncommitted for the next reader (it may be, whole,
   * a batch that the partition's former owner still has on its way). Resolves
   * like `closed`.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown().then(
      () => this.#resolveClosed(),
      (err: unknown) => this.#rejectClosed(err as Error),
    );
    return this.closed;
  }

  async #start(): Promise<void> {
    // What an earlier run left in the spool goes first: a batch read again would have the same key.
    const leftovers = this.#ctx.spool?.leftovers.length ?? 0;
    if (leftovers > 0) await new Promise<void>((resolve) => this.sink.once('recovered', () => resolve()));
    if (this.#stopping) return;
    await this.#admin.connect();
    await this.#consumer.connect();
    for (const topic of this.#o.topics) await this.#consumer.subscribe({ topic, fromBeginning: this.#o.fromBeginning });
    const every = Math.max(50, Math.min(1000, Math.floor(this.#o.idleMs / 2)));
    this.#idleTimer = setInterval(() => this.#cutIdle(), every);
    this.#idleTimer.unref();
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  async #eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (this.#stopping) return;
    this.#running += 1;
    try {
      const state = await this.#stateFor(batch.topic, batch.partition);
      state.end = Math.max(state.end, Number(batch.highWatermark));
      // kafkajs is told the last record taken (what it fetches next follows it) before each wait and at the end,
      // not at every record (each call parses and prints a 64-bit offset). Only a wait lets a seek, a
      // rebalance or close() happen, so they are looked for at the start and after each wait.
      let lastTaken: string | null = null;
      const resolveTaken = () => {
        if (lastTaken !== null) resolveOffset(lastTaken);
        lastTaken = null;
      };
      let look = true;
      try {
        for (const message of batch.messages) {
          if (look) {
            if (this.#stopping || state.dead || !isRunning() || isStale()) return;
            look = false;
          }
          const record: LogRecord = { offset: Number(message.offset), timestamp: Number(message.timestamp) };
          // Below the committed offset: written by whoever committed past it. kafkajs gives such records when it
          // applies a seek made before a rebalance (a reset's) once the partition is back, after another owner
          // has committed further, with cuts this state does not know.
          if (record.offset >= state.committed.offset && !state.batcher.seen(record)) {
            const taken = this.#take(state, record, message, heartbeat);
            if (taken !== true) {
              resolveTaken();
              if (!(await taken)) return;
              look = true;
            }
          }
          lastTaken = message.offset;
        }
      } finally {
        resolveTaken();
      }
      // Past its last record, the batch may end in offsets that hold nothing to read (a transaction's control record).
      this.#passed(batch.topic, batch.partition, Number(batch.messages[0]?.offset ?? batch.lastOffset()), Number(batch.lastOffset()), Number(batch.highWatermark));
    } finally {
      if (--this.#running === 0) for (const wake of this.#runningIdle.splice(0)) wake();
    }
  }

  /**
   * Offsets `first`..`last` of a partition were fetched and hold nothing more
   * to take: what this worker read of the partition reaches `last` (when it
   * had read up to `first`), and a commit with no batch open or on its way
   * can go past them, to the end of the log.
   */
  #passed(topic: string, partition: number, first: number, last: number, highWatermark: number): void {
    const state = this.#states.get(`${topic}\u0000${partition}`);
    if (state === undefined || state instanceof Promise || state.dead) return;
    state.end = Math.max(state.end, highWatermark);
    const { batcher } = state;
    if (first > batcher.next || last < batcher.next) return;
    batcher.pass(last);
    if (batcher.open === null) this.#commitSoon();
  }

  /**
   * One record into its partition's batch, within the memory budget: `true`
   * at once when it fits (no promise per record), else a promise, `false`
   * when the partition was superseded while it waited.
   */
  #take(state: PartitionState, record: LogRecord, message: KafkaMessage, heartbeat: () => Promise<void>): true | Promise<boolean> {
    const chained = this.#chained.get(state.id)?.get(record.offset);
    if (chained !== undefined) {
      // The first record of a batch on its way (this partition is read again): its records are passed over.
      const closed = state.batcher.closeBefore(record, null);
      if (closed !== null) {
        this.#stats.batches += 1;
        this.#handOff(state, closed, false);
      }
      if (state.batcher.open === null) {
        this.#stats.records += 1;
        this.#passOver(state, chained);
        return true;
      }
    }
    this.#stats.records += 1;
    this.#ctx.counters.eventsIn += 1;
    state.lastRecordAt = Date.now();
    let routed: RoutedEvent | null = null;
    if (message.value === null) this.#ctx.reject('ERR_S3SINK_RECORD', `Kafka record ${state.topic}/${state.partition}@${record.offset} has no value (a tombstone): nothing to write`, '');
    else routed = this.#router.route({ payload: message.value }, this.#withMeta ? (name) => metaValue(state, message, name) : undefined);
    return this.#admit(state, record, routed) ? true : this.#admitLater(state, record, routed, heartbeat);
  }

  /** Takes the record if it fits now (closing batches as the rules say, cutting the largest when the budget is full of open ones); `false` when it must wait. */
  #admit(state: PartitionState, record: LogRecord, routed: RoutedEvent | null): boolean {
    const { ledger, counters } = this.#ctx;
    for (;;) {
      const closed = state.batcher.closeBefore(record, routed);
      if (closed !== null) {
        this.#stats.batches += 1;
        this.#handOff(state, closed, false);
      }
      let need = 0;
      if (routed !== null) {
        const before = state.batcher.open?.shares.get(routed.destination.id)?.batch.bytes ?? 0;
        need = routed.bytes + (before < STREAM_AFTER_BYTES && before + routed.bytes >= STREAM_AFTER_BYTES ? compressorBytes(this.#ctx.options.parallelGzip) : 0);
      }
      const decision = need === 0 ? 'admit' : decide(ledger.held, ledger.max, need, ledger.draining);
      if (decision === 'admit') {
        if (state.batcher.open === null) state.openSince = Date.now();
        const share = state.batcher.take(record, routed);
        if (share !== null && routed !== null) {
          ledger.charge(share.ref, need);
          counters.bytesIn += routed.bytes;
        }
        return true;
      }
      if (decision === 'close' && this.#cutLargest()) continue;
      return false;
    }
  }

  /** Waits for the budget to release, heartbeating so that the group keeps this member (a rebalance throws here). */
  async #admitLater(state: PartitionState, record: LogRecord, routed: RoutedEvent | null, heartbeat: () => Promise<void>): Promise<boolean> {
    const { ledger } = this.#ctx;
    for (;;) {
      // A partition waiting for room is not idle: its batch is not cut by the idle timer meanwhile.
      state.waiting = true;
      try {
        await Promise.race([ledger.released(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
        await heartbeat();
      } finally {
        state.waiting = false;
        state.lastRecordAt = Date.now();
      }
      if (this.#stopping || state.dead) return false;
      if (this.#admit(state, record, routed)) return true;
    }
  }

  /** A batch on its way, met again at its first record: its records are skipped, and the partition's commits wait for its objects as for its own. */
  #passOver(state: PartitionState, chained: Chained): void {
    const pending: Pending = { batch: { first: chained.first, last: chained.last }, waiting: new Set() };
    for (const key of chained.keys) {
      const inChain = this.#inflight.get(key);
      if (inChain === undefined || inChain.safe) continue;
      pending.waiting.add(key);
      inChain.waiting.add(pending);
    }
    state.frontier.add(pending);
    state.batcher.skip(chained.last);
  }

  /** Cuts the open batch holding the most of the budget (a recorded cut); `false` when no batch is open (or none can be cut). */
  #cutLargest(): boolean {
    let largest: PartitionState | null = null;
    for (const state of this.#liveStates()) {
      const open = state.batcher.open;
      if (open !== null && open.bytes > 0 && (largest === null || open.bytes > (largest.batcher.open as LogBatch).bytes) && this.#canRecordCut(state)) largest = state;
    }
    if (largest === null) return false;
    this.#cut(largest);
    return true;
  }

  /**
   * One more cut of the partition fits in its commit metadata. It may not
   * when many batches were cut while the committed offset could not move (an
   * S3 outage without a spool): the partition's batch is then not cut (it
   * waits, as a full budget of undelivered batches does) until commits move on.
   */
  #canRecordCut(state: PartitionState): boolean {
    const open = state.batcher.open;
    if (open === null) return false;
    if (encodeCuts([...state.batcher.cutsFrom(state.committed.offset), open.last]).length <= MAX_METADATA_BYTES) return true;
    this.#ctx.warn('S3SINK_KAFKA_CUTS_FULL', `${state.topic}/${state.partition}: its commit metadata has no room for another cut until its committed offset (${state.committed.offset}) moves on: its open batch waits`, true);
    return false;
  }

  /**
   * Cuts the batches of quiet partitions (their window has ended on the wall
   * clock, no record came for idleMs, and this worker has read to the log's
   * end as its latest fetch saw it: one behind its log is slow, not quiet,
   * and a cut there would only make a smaller object), and batches open for longer than a
   * window and idleMs: a record stamped ahead of the clock (Kafka takes up to
   * an hour by default) opens a window that the wall clock does not end soon,
   * and every record after it is late for that window and stays in it.
   */
  #cutIdle(): void {
    const now = Date.now();
    const { idleMs } = this.#o;
    const { windowMs } = this.#ctx.options;
    for (const state of this.#liveStates()) {
      const open = state.batcher.open;
      if (open === null || state.waiting) continue;
      const quiet = now >= open.window.end && now - state.lastRecordAt >= idleMs && state.batcher.next >= state.end;
      if (quiet || now - state.openSince >= windowMs + idleMs) this.#cut(state);
    }
  }

  /** Closes the partition's open batch now; it goes into the chain once the cut is recorded with the committed offset. */
  #cut(state: PartitionState): void {
    if (!this.#canRecordCut(state)) return;
    const closed = state.batcher.cut();
    if (closed === null) return;
    this.#stats.cuts += 1;
    this.#handOff(state, closed, true);
  }

  /** A closed batch: tracked for commits, and sent into the chain after the ones before it (after its cut is recorded, if it is a cut). */
  #handOff(state: PartitionState, batch: LogBatch, recorded: boolean): void {
    const { ledger } = this.#ctx;
    // Its offsets only: the lines go into the chain, where the budget counts them (compressed, once gzip has them).
    const pending: Pending = { batch: { first: batch.first, last: batch.last }, waiting: new Set() };
    for (const share of batch.shares.values()) {
      pending.waiting.add(share.batch.key);
      ledger.markClosed(share.ref);
    }
    state.frontier.add(pending);
    state.handoffs = state.handoffs.then(async () => {
      if (!state.dead && recorded) {
        await this.#commit().catch(() => {});
        // Recorded: the committed offset is past the batch, or carries its cut. Else no reader after this one would know it.
        const { offset, metadata } = state.committed;
        if (!state.dead && offset <= batch.last && !decodeCuts(metadata).includes(batch.last)) this.#reset(state, `the cut of its batch at offset ${batch.last} could not be recorded with the committed offset`);
      }
      // An object of the same key that was fenced is on its way out of the chain: this one follows it (one key, one upload, one segment).
      for (const share of batch.shares.values()) {
        const inChain = this.#inflight.get(share.batch.key);
        if (inChain?.fenced) await inChain.gone;
      }
      if (state.dead) {
        for (const share of batch.shares.values()) ledger.settle(share.ref);
        return;
      }
      const pieces = [];
      for (const share of batch.shares.values()) {
        const key = share.batch.key;
        const inChain = this.#inflight.get(key);
        if (inChain) {
          // The same object is on its way already (this batch was read twice): wait for it, unless it is safe already.
          if (inChain.safe) pending.waiting.delete(key);
          else inChain.waiting.add(pending);
          ledger.settle(share.ref);
          continue;
        }
        // Its charge moves to its key, which the chain's stages release as it drains.
        const held = ledger.heldBy(share.ref);
        ledger.settle(share.ref);
        ledger.charge(share.batch, held);
        ledger.markClosed(share.batch);
        let leave!: () => void;
        const gone = new Promise<void>((resolve) => (leave = resolve));
        this.#inflight.set(key, { waiting: new Set([pending]), safe: false, partition: state.id, first: batch.first, last: batch.last, generation: state.generation, fenced: false, gone, leave });
        let byFirst = this.#chained.get(state.id);
        if (byFirst === undefined) this.#chained.set(state.id, (byFirst = new Map()));
        let chained = byFirst.get(batch.first);
        if (chained === undefined) byFirst.set(batch.first, (chained = { first: batch.first, last: batch.last, keys: new Set() }));
        chained.keys.add(key);
        pieces.push(...piecesOf({ ...batch, shares: new Map([[key, share]]) }));
      }
      if (pieces.length === 0) {
        this.#commitSoon();
        return;
      }
      if (!this.sink.write(pieces)) await new Promise<void>((resolve) => whenWritable([this.sink], resolve));
    });
    state.handoffs.catch((err: unknown) => this.#fail(err as Error));
  }

  /** An object is safe: sealed in the spool, or (`left`) delivered or kept as a dead letter, when it also leaves the chain. */
  #safe(key: string, left: boolean): void {
    const inChain = this.#inflight.get(key);
    if (!inChain) return;
    if (left) this.#left(key);
    if (!inChain.safe) {
      inChain.safe = true;
      for (const pending of inChain.waiting) pending.waiting.delete(key);
      inChain.waiting.clear();
    }
    this.#commitSoon();
  }

  /** The object has left the chain (delivered, dead-lettered or fenced). */
  #left(key: string): void {
    const inChain = this.#inflight.get(key);
    if (!inChain) return;
    this.#inflight.delete(key);
    this.#unchain(key, inChain);
    inChain.leave();
    this.#commitSoon();
  }

  #unchain(key: string, inChain: InChain): void {
    const byFirst = this.#chained.get(inChain.partition);
    const chained = byFirst?.get(inChain.first);
    if (byFirst === undefined || chained === undefined) return;
    chained.keys.delete(key);
    if (chained.keys.size === 0) byFirst.delete(inChain.first);
    if (byFirst.size === 0) this.#chained.delete(inChain.partition);
  }

  /**
   * The fence (asked before each attempt to publish an object): may this
   * worker write it? Yes while the group has not rebalanced since its records
   * were read. After a rebalance the partition may be another worker's,
   * which reads the records again from the committed offset and may cut them
   * into other batches (a cut for room in its budget): this worker's late
   * object would then overwrite the other's under the same key, and its
   * records past the other's cut would be in two objects. So it is written
   * only when this worker sent a commit past it (with a spool: sealed, then
   * committed; the next reader starts after it; see #sentPast). Else it is
   * fenced: not written, and read again (by this worker too, if the
   * partition is its own again).
   */
  async #mayPublish(key: string): Promise<boolean> {
    const inChain = this.#inflight.get(key);
    // Not of this run's reading: a batch an earlier run left sealed in the spool is written as it was.
    if (inChain === undefined) return true;
    if (inChain.fenced) return false;
    if (this.#committedPast(inChain)) return true;
    if (inChain.generation === this.#generation && (await this.#inGroup(inChain.generation))) return true;
    // Commits under way may take the offset past it: wait for every round started so far.
    for (;;) {
      const round = this.#commits;
      await round.catch(() => {});
      if (this.#commits === round) break;
    }
    if (this.#committedPast(inChain)) return true;
    if (inChain.fenced) return false;
    inChain.fenced = true;
    // A reading of the partition now must not pass over it, and one that has must read it again
    // (unless it started past it: the partition's new owner committed past it, having written it).
    this.#unchain(key, inChain);
    const live = this.#states.get(inChain.partition);
    if (!this.#stopping && live instanceof PartitionState && !live.dead && live.batcher.next > inChain.first && live.committed.offset <= inChain.last) {
      this.#reset(live, `its batch at offsets ${inChain.first}-${inChain.last}, read before a rebalance, is read again (the old reading is not written)`);
    }
    return false;
  }

  /**
   * What `#mayPublish` said yes to still holds, checked again as the request
   * leaves: computing a large body's checksum and signature takes
   * milliseconds, and a pause past the session there (a stopped process, a
   * frozen VM) must not send a request the lease no longer covers. What is
   * left is the time to hand the request to the kernel (see the README's
   * Kafka failure model).
   */
  #holds(key: string): boolean {
    const inChain = this.#inflight.get(key);
    if (inChain === undefined) return true;
    if (inChain.fenced) return false;
    // The same two tests as #mayPublish's yes: were they to differ, the request would be signed and dropped over
    // and over (ask yes, holds no) until they agreed.
    return this.#committedPast(inChain) || this.#leaseHolds(inChain.generation);
  }

  /** This worker sent a commit past the batch (see #sentPast): it may be written whatever the group did since. */
  #committedPast(inChain: InChain): boolean {
    return (this.#sentPast.get(inChain.partition) ?? -1) > inChain.last;
  }

  /** Still in `generation` of the group, and its lease holds now (see #leaseUntil). */
  #leaseHolds(generation: number): boolean {
    return generation === this.#generation && !this.#failed && performance.now() < this.#leaseUntil;
  }

  /**
   * This member is still in `generation` of the group: no rebalance since,
   * and its lease holds. Past its lease it waits for a heartbeat that renews
   * it or for the rebalance (or crash, or stop) that says it left, however
   * long that takes: a slow heartbeat (a broker restarting, a loaded machine)
   * is no sign of having left, and fencing on it would only read batches again.
   */
  async #inGroup(generation: number): Promise<boolean> {
    for (;;) {
      if (generation !== this.#generation || this.#failed) return false;
      if (this.#leaseHolds(generation)) return true;
      await new Promise<void>((resolve) => this.#beatWaiters.push(resolve));
    }
  }

  #commitSoon(): void {
    this.#commit().catch(() => {});
    if (this.#settledWaiters.length > 0 && this.#allSettled()) for (const wake of this.#settledWaiters.splice(0)) wake();
  }

  /**
   * Commits every live partition whose safe offset or recorded cuts moved.
   * Rounds run one at a time; the promise is of a round that starts after this
   * call (so it sees what the caller just changed). A round that fails
   * (a rebalance under way) is followed by the next one.
   */
  #commit(): Promise<void> {
    if (this.#queued) return this.#queued;
    const next = this.#commits
      .catch(() => {})
      .then(() => {
        this.#queued = null;
        return this.#commitRound();
      });
    this.#queued = next;
    this.#commits = next;
    // A failed round is tried again (nothing else may come to move the offsets: a quiet topic).
    next.catch(() => {
      if (!this.#stopping && this.#failed === null) setTimeout(() => this.#commitSoon(), 1000).unref();
    });
    return next;
  }

  async #commitRound(): Promise<void> {
    const wanted: { state: PartitionState; committed: Committed }[] = [];
    for (const state of this.#liveStates()) {
      const offset = state.commitOffset();
      // Nothing read and nothing committed: there is no offset to commit (a commit of -1 would fail the whole round).
      if (offset < 0) continue;
      const metadata = encodeCuts(state.batcher.cutsFrom(offset));
      if (offset !== state.committed.offset || metadata !== state.committed.metadata) wanted.push({ state, committed: { offset, metadata } });
    }
    if (wanted.length === 0) return;
    for (const { state, committed } of wanted) if (committed.offset > (this.#sentPast.get(state.id) ?? -1)) this.#sentPast.set(state.id, committed.offset);
    const generation = this.#generation;
    const made = this.#commitsMade;
    await this.#consumer.commitOffsets(wanted.map(({ state, committed }) => ({ topic: state.topic, partition: state.partition, offset: String(committed.offset), metadata: committed.metadata })));
    if (this.#commitsMade === made) throw new KafkaSinkError('the offsets were not committed: the Kafka consumer is not running (it restarts after a failure)');
    if (generation !== this.#generation) {
      // kafkajs retried it across a rebalance, and it was made in the new generation, maybe for partitions
      // that are another worker's now: this worker's states of them are gone; the other's commits overwrite it.
      this.#ctx.warn('S3SINK_KAFKA_LATE_COMMIT', 'a commit begun before a rebalance was made after it (kafkajs retries commits): the partitions it names may be read again from its offsets by their new owners');
      throw new KafkaSinkError('the commit was made after a rebalance');
    }
    this.#stats.commits += 1;
    for (const { state, committed } of wanted) {
      state.committed = committed;
      state.batcher.forget(committed.offset);
    }
  }

  /** The partition starts again from its committed offset (what it holds that is not yet in the chain is dropped). */
  #reset(state: PartitionState, why: string): void {
    this.#drop(state);
    this.#stats.resets += 1;
    this.#ctx.warn('S3SINK_KAFKA_RESET', `${state.topic}/${state.partition} starts again from its committed offset ${state.committed.offset}: ${why}`);
    try {
      this.#consumer.seek({ topic: state.topic, partition: state.partition, offset: String(state.committed.offset) });
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #drop(state: PartitionState): void {
    if (state.dead) return;
    state.dead = true;
    if (this.#states.get(state.id) === state) this.#states.delete(state.id);
    const open = state.batcher.cut();
    if (open !== null) for (const share of open.shares.values()) this.#ctx.ledger.settle(share.ref);
  }

  /** After every rebalance kafkajs reads each assigned partition again from its committed offset: so does the batching. */
  /** This member is out of the group (or may be): no object read so far is written unless committed past. */
  #leftGroup(): void {
    this.#leaseUntil = 0;
    this.#rebalanced();
  }

  #rebalanced(): void {
    this.#generation += 1;
    for (const wake of this.#beatWaiters.splice(0)) wake();
    for (const entry of [...this.#states.values()]) if (!(entry instanceof Promise)) this.#drop(entry);
    this.#states.clear();
  }

  #stateFor(topic: string, partition: number): Promise<PartitionState> | PartitionState {
    const id = `${topic}\u0000${partition}`;
    const known = this.#states.get(id);
    if (known) return known;
    const generation = this.#generation;
    const loading = this.#committedOffsets(topic).then((topics) => {
      const found = topics[0]?.partitions.find((p) => p.partition === partition);
      const offset = Number(found?.offset ?? -1);
      const metadata = found?.metadata ?? '';
      const { windowMs, maxObjectBytes } = this.#ctx.options;
      const cuts = offset >= 0 ? decodeCuts(metadata) : [];
      // Batches still on their way from an earlier reading: the batch before each of them ends where it did then.
      for (const first of this.#chained.get(id)?.keys() ?? []) if (first > offset && first > 0) cuts.push(first - 1);
      const batcher = new PartitionBatcher({ groupId: this.#o.groupId, topic, partition, windowMs, maxObjectBytes, maxBatchBytes: this.#o.maxBatchBytes, sealed: this.#durable }, cuts);
      const state = new PartitionState(topic, partition, generation, batcher, { offset, metadata: offset >= 0 ? metadata : '' });
      if (generation !== this.#generation) state.dead = true;
      else this.#states.set(id, state);
      return state;
    });
    this.#states.set(id, loading);
    loading.catch(() => {
      if (this.#states.get(id) === loading) this.#states.delete(id);
    });
    return loading;
  }

  /** The group's committed offsets (and their metadata) for `topic`, asked again while the group's coordinator moves or loads. */
  async #committedOffsets(topic: string): ReturnType<Admin['fetchOffsets']> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#admin.fetchOffsets({ groupId: this.#o.groupId, topics: [topic] });
      } catch (err) {
        if (!(err as { retriable?: boolean }).retriable || attempt >= 30 || this.#stopping) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  *#liveStates(): Iterable<PartitionState> {
    for (const entry of this.#states.values()) if (!(entry instanceof Promise) && !entry.dead) yield entry;
  }

  #allSettled(): boolean {
    for (const state of this.#liveStates()) if (!state.frontier.settled) return false;
    for (const inChain of this.#inflight.values()) if (!inChain.safe) return false;
    return true;
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    if (this.#idleTimer) clearInterval(this.#idleTimer);
    try {
      this.#consumer.pause(this.#o.topics.map((topic) => ({ topic })));
    } catch {
      // not running yet
    }
    if (this.#running > 0) await new Promise<void>((resolve) => this.#runningIdle.push(resolve));
    if (this.#failed === null) {
      // A batch that reaches the end of the log is cut. One behind it is left to the next reader (its first
      // offset is committed): it may be a batch that the partition's former owner still has on its way, whole.
      for (const state of [...this.#liveStates()]) if (state.batcher.open !== null && state.batcher.next >= state.end) this.#cut(state);
      await Promise.all([...this.#liveStates()].map((state) => state.handoffs));
      if (!this.#allSettled()) await new Promise<void>((resolve) => this.#settledWaiters.push(resolve));
      await this.#commit().catch(() => {});
    }
    // Leaving the group: what is still on its way is written only if its offsets were sent in a commit.
    this.#leftGroup();
    await this.#consumer.disconnect().catch(() => {});
    await this.#admin.disconnect().catch(() => {});
    if (this.#failed === null) await this.sink.close();
    else if (!this.sink.destroyed) this.sink.destroy();
    if (this.#failed) throw this.#failed;
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = err;
    for (const wake of this.#settledWaiters.splice(0)) wake();
    for (const wake of this.#beatWaiters.splice(0)) wake();
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.close().catch(() => {});
  }
}

/** A record's key, topic, partition or header (`header.NAME`; the first, if several), as UTF-8, for a `{kafka:...}` placeholder. */
function metaValue(state: PartitionState, message: KafkaMessage, name: string): string | undefined {
  if (name === 'topic') return state.topic;
  if (name === 'partition') return String(state.partition);
  if (name === 'key') return message.key?.toString('utf8') ?? undefined;
  let value = message.headers?.[name.slice('header.'.length)];
  if (Array.isArray(value)) value = value[0];
  return value === undefined ? undefined : value.toString('utf8');
}

/** After the spool: a batch's end passing here means its segment is complete and fsynced (its records are durable). */
class SealWatch extends Transform {
  readonly #sealed: (key: string) => void;

  constructor(sealed: (key: string) => void) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#sealed = sealed;
  }

  override _transform(pieces: BytesPiece[], _encoding: BufferEncoding, callback: TransformCallback): void {
    for (const piece of pieces) if ('end' in piece) this.#sealed(piece.batch.key);
    this.push(pieces);
    callback();
  }
}

/** The Kafka input's own options, checked. */
interface Resolved {
  brokers: string[];
  topics: string[];
  groupId: string;
  clientId: string;
  fromBeginning: boolean;
  idleMs: number;
  sessionTimeoutMs: number;
  maxBatchBytes: number;
}

function validate(o: KafkaSinkOptions): Omit<Resolved, 'maxBatchBytes'> {
  if (o === null || typeof o !== 'object') throw new OptionError('options', o, 'an object with brokers, topics and groupId');
  const list = (name: string, value: unknown): string[] => {
    if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v.length > 0)) throw new OptionError(name, value, 'a non-empty array of non-empty strings');
    return value as string[];
  };
  const brokers = list('brokers', o.brokers);
  for (const b of brokers) if (!/^[^\s:]+:\d{1,5}$/.test(b)) throw new OptionError('brokers', b, 'host:port');
  const topics = list('topics', o.topics);
  if (typeof o.groupId !== 'string' || o.groupId.length === 0) throw new OptionError('groupId', o.groupId, 'a non-empty string');
  const int = (name: string, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw new OptionError(name, value, `an integer of at least ${min}`);
    return value;
  };
  if (o.maxBatchBytes !== undefined) int('maxBatchBytes', o.maxBatchBytes, 0, 1);
  if (o.fromBeginning !== undefined && typeof o.fromBeginning !== 'boolean') throw new OptionError('fromBeginning', o.fromBeginning, 'a boolean');
  if (o.sink?.input === 'lines') throw new OptionError('sink.input', o.sink.input, 'nothing: each Kafka record is one event');
  if (o.sink?.time !== undefined) throw new OptionError('sink.time', o.sink.time, "nothing: a Kafka record's time is its timestamp (batches follow the log)");
  return {
    brokers,
    topics,
    groupId: o.groupId,
    clientId: o.clientId ?? 's3-sink',
    fromBeginning: o.fromBeginning ?? true,
    idleMs: int('idleMs', o.idleMs, DEFAULT_IDLE_MS, 1),
    sessionTimeoutMs: int('sessionTimeoutMs', o.sessionTimeoutMs, 30_000, 1000),
  };
}
