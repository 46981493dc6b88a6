import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';

/**
 * A real Apache Kafka broker for tests: one JVM that is broker and controller
 * at once (KRaft), from the Maven Central jars that `kafka/fetch` puts in
 * `.cache/kafka/VERSION/libs`, on free loopback ports, with its data in a
 * temporary directory. Ready (start() and restart() resolve) once it answers
 * metadata requests and its group coordinator has loaded.
 */
export interface TestKafka {
  /** `['127.0.0.1:PORT']`: what a client's `brokers` option takes. */
  brokers: string[];
  /** The same as one `host:port` string. */
  bootstrap: string;
  /** The directory that holds the broker's config and data (removed by stop()). */
  dir: string;
  /** Stops the broker (SIGTERM, a clean shutdown; SIGKILL past 20 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, at once (a crash): nothing is flushed. restart() brings it back; stop() still cleans up. */
  kill(): void;
  /**
   * Starts it again on the same ports with the same data, and resolves once
   * it answers metadata and group requests. A running broker is stopped cleanly first;
   * after kill() it starts from what the crash left.
   */
  restart(): Promise<void>;
  /** Creates a topic (replication 1) and waits until every partition has a leader. Fails if it exists. */
  createTopic(name: string, partitions: number): Promise<void>;
  /** The broker's recent output (warnings and errors), for a failing test's message. */
  output(): string;
}

export interface StartKafkaOptions {
  /** Broker properties over the defaults (see brokerConfig below), e.g. `{ 'log.segment.bytes': 1048576 }`. */
  properties?: Record<string, string | number | boolean>;
  /** The JVM's largest heap in MiB (default 384). */
  heapMiB?: number;
  /**
   * true (default): JVM flags for a quick start (C1 only, serial GC), what a
   * test wants. false: the JVM's own (tiered JIT, G1), for a benchmark that
   * should not be held back by the broker.
   */
  quickStart?: boolean;
  /** How long start and restart may take (default 60 s). */
  startTimeoutMs?: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const KAFKA_VERSION = readFileSync(join(ROOT, 'kafka', 'version'), 'utf8').trim();
export const KAFKA_LIBS = join(ROOT, '.cache', 'kafka', KAFKA_VERSION, 'libs');

let skipReason: string | null | undefined;

/**
 * Why the Kafka tests cannot run here, in one line, or null when they can
 * (Java 17 or later on PATH and the broker jars fetched).
 */
export function kafkaSkipReason(): string | null {
  if (skipReason === undefined) skipReason = findSkipReason();
  return skipReason;
}

function findSkipReason(): string | null {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.error) {
    const code = (java.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? 'Kafka tests skipped: no java on PATH (CI runs them)'
      : `Kafka tests skipped: java -version failed: ${java.error.message} (CI runs them)`;
  }
  const major = Number(/version "(?:1\.)?(\d+)/.exec(java.stderr)?.[1]);
  if (java.status !== 0 || !(major >= 17)) {
    return `Kafka tests skipped: Kafka ${KAFKA_VERSION} needs Java 17 or later, java on PATH says ${JSON.stringify(java.stderr.split('\n')[0] ?? '')} (CI runs them)`;
  }
  if (!existsSync(join(KAFKA_LIBS, '.fetched'))) {
    return `Kafka tests skipped: the broker jars are not in ${relative(ROOT, KAFKA_LIBS)} (run kafka/fetch; CI runs them)`;
  }
  return null;
}

/** Brokers still running when this process exits are killed, and their directories removed. */
const live = new Set<{ child: ChildProcess | undefined; dir: string }>();
process.on('exit', () => {
  for (const broker of live) {
    broker.child?.kill('SIGKILL');
    rmSync(broker.dir, { recursive: true, force: true });
  }
});

export async function startKafka(options: StartKafkaOptions = {}): Promise<TestKafka> {
  const reason = kafkaSkipReason();
  if (reason) throw new Error(reason.replace('Kafka tests skipped: ', 'cannot start Kafka: '));
  const heapMiB = options.heapMiB ?? 384;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const jvmFlags = [
    `-Xmx${heapMiB}m`,
    '-Xms64m',
    ...(options.quickStart === false ? [] : ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC']),
    '-XX:-UsePerfData',
    '-Djava.awt.headless=true',
  ];
  const dir = await mkdtemp(join(tmpdir(), 's3-sink-kafka-'));
  const state: { child: ChildProcess | undefined; dir: string } = { child: undefined, dir };
  live.add(state);
  try {
    // A port taken between our probe and the broker's bind makes it exit
    // at once; it is tried again with new ports, a few times.
    for (let attempt = 1; ; attempt++) {
      const [port, controllerPort] = await freePorts(2);
      const configFile = join(dir, 'server.properties');
      await writeFile(configFile, brokerConfig(dir, port!, controllerPort!, options.properties ?? {}));
      await writeFile(join(dir, 'log4j2.properties'), LOG4J2_CONFIG);
      await rm(join(dir, 'data'), { recursive: true, force: true });
      await runJava(['-Xmx128m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-XX:-UsePerfData'], 'kafka.tools.StorageTool', ['format', '-t', clusterId(), '-c', configFile], dir);
      const broker = new Broker(dir, jvmFlags, port!, startTimeoutMs);
      try {
        state.child = await broker.start();
      } catch (err) {
        if (attempt < 3 && /Address already in use/.test(broker.output())) continue;
        throw err;
      }
      return broker.handle(state, () => live.delete(state));
    }
  } catch (err) {
    live.delete(state);
    state.child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class Broker {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #watchdog: ChildProcess | undefined;
  #output = '';

  constructor(
    readonly dir: string,
    readonly jvmFlags: string[],
    readonly port: number,
    readonly startTimeoutMs: number,
  ) {}

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  output(): string {
    return this.#output;
  }

  #record(chunk: Buffer): void {
    this.#output = (this.#output + chunk.toString('utf8')).slice(-32_768);
  }

  /** Spawns the JVM and resolves once it answers a metadata request (or rejects, with its output). */
  async start(): Promise<ChildProcess> {
    const child = spawn(
      'java',
      [...this.jvmFlags, `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`, '-cp', join(KAFKA_LIBS, '*'), 'kafka.Kafka', join(this.dir, 'server.properties')],
      { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    let failure: Error | undefined;
    this.#exited = new Promise<void>((resolve) => {
      child.on('error', (err) => {
        failure = err;
        resolve();
      });
      child.on('exit', (code, signal) => {
        failure ??= new Error(`the Kafka broker exited (${signal ?? `code ${code}`})`);
        resolve();
      });
    });
    child.stdout?.on('data', (chunk: Buffer) => this.#record(chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.#record(chunk));
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    if (child.pid !== undefined) this.#watchdog = startWatchdog(child.pid);

    const deadline = performance.now() + this.startTimeoutMs;
    const exitedEarly = this.#exited.then(() => {
      throw new Error(`${failure?.message ?? 'the Kafka broker exited'} while starting; its output:\n${this.#output}`);
    });
    exitedEarly.catch(() => {});
    try {
      await Promise.race([exitedEarly, this.#waitReady(deadline, () => failure !== undefined)]);
    } catch (err) {
      this.#stopWatchdog();
      child.kill('SIGKILL');
      await this.#exited;
      throw err;
    }
    return child;
  }

  /** Polls until the port answers, a metadata request names this broker and its group coordinator answers; fails past the deadline. */
  async #waitReady(deadline: number, gone: () => boolean): Promise<void> {
    let last: unknown;
    while (!gone()) {
      if (performance.now() > deadline) {
        throw new Error(`the Kafka broker did not answer on ${this.bootstrap} within ${this.startTimeoutMs} ms (last: ${String(last)}); its output:\n${this.#output}`);
      }
      try {
        await portAnswers(this.port);
        const admin = new Kafka({ clientId: 'test-kafka-probe', brokers: [this.bootstrap], logLevel: logLevel.NOTHING, connectionTimeout: 1000, retry: { retries: 0 } }).admin();
        try {
          await admin.connect();
          const cluster = await admin.describeCluster();
          if (cluster.brokers.length === 0) {
            last = 'no broker in the metadata yet';
          } else {
            // Groups work too: the first group request has the broker create
            // (or, after a restart, load) the offsets topic. Until then
            // consumers get NOT_COORDINATOR, which kafkajs's consumer
            // retries for only about 0.4 s and its admin not at all.
            await admin.fetchOffsets({ groupId: 'test-kafka-ready' });
            return;
          }
        } finally {
          await admin.disconnect();
        }
      } catch (err) {
        last = err instanceof Error ? err.message : err;
      }
      await delay(50);
    }
    throw new Error('the Kafka broker exited while starting');
  }

  #stopWatchdog(): void {
    this.#watchdog?.kill('SIGKILL');
    this.#watchdog = undefined;
  }

  /** Ends the JVM: SIGTERM (a clean shutdown) then SIGKILL if it takes over 20 s; or SIGKILL at once. */
  async halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    this.#stopWatchdog();
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      if (signal === 'SIGTERM') {
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await this.#exited;
        clearTimeout(timer);
      }
    }
    await this.#exited;
  }

  handle(state: { child: ChildProcess | undefined; dir: string }, forget: () => void): TestKafka {
    let stopped = false;
    const broker = this;
    return {
      brokers: [this.bootstrap],
      bootstrap: this.bootstrap,
      dir: this.dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        await broker.halt('SIGTERM');
        forget();
        await rm(broker.dir, { recursive: true, force: true });
      },
      kill() {
        if (stopped) throw new Error('the Kafka broker was stopped');
        broker.#stopWatchdog();
        broker.#child?.kill('SIGKILL');
      },
      async restart() {
        if (stopped) throw new Error('the Kafka broker was stopped');
        await broker.halt('SIGTERM');
        state.child = await broker.start();
      },
      async createTopic(name, partitions) {
        const admin = new Kafka({ clientId: 'test-kafka-admin', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING }).admin();
        await admin.connect();
        try {
          const created = await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
          if (!created) throw new Error(`topic ${name} exists already`);
        } finally {
          await admin.disconnect();
        }
      },
      output: () => broker.output(),
    };
  }
}

/**
 * The broker's config: a single node that is broker and controller, on
 * loopback, everything replicated once, groups that start without delay, no
 * topic created by a client asking for it (tests create theirs), a short
 * broker session.
 */
function brokerConfig(dir: string, port: number, controllerPort: number, extra: Record<string, string | number | boolean>): string {
  const config: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': join(dir, 'data'),
    'num.partitions': 1,
    'auto.create.topics.enable': false,
    'offsets.topic.replication.factor': 1,
    // One partition (50 by default): created and loaded at once, so the one
    // group request of the readiness check covers every group.
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'group.initial.rebalance.delay.ms': 0,
    // After a kill(), the controller holds the dead broker's registration
    // until its session times out (9 s by default) before the restarted one
    // may register: 3 s, with heartbeats every 0.5 s, makes restart() after
    // kill() about 5 s instead of 12.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 3000,
    // Tests produce records stamped days or years ago (to close windows at
    // once): with the default retention (7 days, by timestamp) the broker
    // deletes them soon after start, under a running test.
    'log.retention.ms': -1,
    ...extra,
  };
  return Object.entries(config).map(([key, value]) => `${key}=${String(value)}\n`).join('');
}

/** Warnings and errors to stdout (kept by the helper for error messages); the rest dropped. */
const LOG4J2_CONFIG = `status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
`;

/** A random cluster id as Kafka writes them: 16 bytes, base64url, not starting with '-'. */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** Ports free now on 127.0.0.1 (the kernel's choice for port 0, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const server = createServer();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function portAnswers(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
}

/** Runs a Java main class of the broker's jars to the end; rejects with its output if it fails. */
function runJava(jvmFlags: string[], mainClass: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('java', [...jvmFlags, '-cp', join(KAFKA_LIBS, '*'), mainClass, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.stdout.on('error', () => {});
    child.stderr.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${mainClass} ${args[0] ?? ''} failed (${signal ?? `code ${code}`}):\n${output}`));
    });
  });
}

/**
 * A shell that SIGKILLs the broker when our end of its stdin closes: when
 * this process dies without running its exit handlers (SIGKILL, a test
 * runner's timeout), the JVM does not outlive it. Killed first on a
 * deliberate stop, so it never signals a pid that was reused.
 */
function startWatchdog(pid: number): ChildProcess {
  const watchdog = spawn('sh', ['-c', 'read _; kill -9 "$1" 2>/dev/null', 'kafka-watchdog', String(pid)], { stdio: ['pipe', 'ignore', 'ignore'] });
  watchdog.on('error', () => {});
  watchdog.stdin?.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as Socket | null)?.unref();
  return watchdog;
}
