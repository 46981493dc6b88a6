import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { backoffDelay, classify, type RetryPolicy } from './retry.js';

/**
 * Every request the sink makes goes through here: each attempt is cut off
 * after `requestTimeoutMs` (a store that accepts a request and never answers
 * must not hang an upload), failures that can pass are retried per the
 * policy, and the sink's abort signal (destroy) stops it all.
 *
 * The SDK's own retry layer is off for clients the sink creates
 * (`maxAttempts: 1`), so the policy here is the only one.
 */

export interface RetryInfo {
  operation: string;
  bucket: string | undefined;
  key: string | undefined;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** The S3 error code, network error code, or `RequestTimeout`. */
  code: string;
  /** How long until the next attempt. */
  delayMs: number;
}

/**
 * What a request that publishes an object must pass at each attempt (a
 * Kafka worker's fence, see `Fence` in context.ts).
 */
export interface Gate {
  /** Before the attempt; what it throws stops the retries and is what `send` rejects with. */
  ask(): Promise<void>;
  /**
   * At the last moment before the request leaves: after the SDK computed its
   * checksum and signature, which take milliseconds for a large body. `false`:
   * it is not sent, and `ask` runs again (not counted as an attempt; from the
   * second `false` in a row, after a retry's wait, so that a gate whose two
   * answers keep disagreeing does not spin).
   */
  holds(): boolean;
}

/** The gate's answer changed between `ask` and the request leaving. */
class Lapsed extends Error {}

/** The part of a command's middleware stack used here (the SDK's types for it are not a dependency of ours). */
type Middleware = (next: (args: object) => Promise<object>) => (args: object) => Promise<object>;
type Stack = { add(middleware: Middleware, options: { step: 'deserialize'; priority: 'low'; name: string; override: boolean }): void };

type ClientCommand = Parameters<S3Client['send']>[0];
type Input = { Bucket?: string; Key?: string };
/** Any command of the S3 client (their types do not unify, so it is taken as an object). */
export type Command = { readonly input: object };

export class Transport {
  readonly #client: S3Client;
  readonly #policy: RetryPolicy;
  readonly #timeoutMs: number;
  readonly #onRetry: (info: RetryInfo) => void;
  readonly #random: () => number;

  constructor(client: S3Client, policy: RetryPolicy, timeoutMs: number, onRetry: (info: RetryInfo) => void, random: () => number = Math.random) {
    this.#client = client;
    this.#policy = policy;
    this.#timeoutMs = timeoutMs;
    this.#onRetry = onRetry;
    this.#random = random;
  }

  /**
   * Sends `command`, retrying what can pass; rejects with the last error (its
   * `attempts` says how many were made). With a `gate`, every attempt passes
   * it (see `Gate`).
   */
  async send<T = unknown>(command: Command, signal?: AbortSignal, gate?: Gate): Promise<T> {
    const input = command.input as Input;
    const operation = command.constructor.name.replace(/Command$/, '');
    if (gate) {
      // Innermost (the last step, lowest priority): after the checksum and the signature, right before the HTTP handler.
      const last: Middleware = (next) => (args) => {
        if (!gate.holds()) throw new Lapsed();
        return next(args);
      };
      (command as unknown as { middlewareStack: Stack }).middlewareStack.add(last, { step: 'deserialize', priority: 'low', name: 's3SinkGate', override: true });
    }
    let lapses = 0;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      if (lapses > 1) await sleep(backoffDelay(this.#policy, lapses - 1, this.#random), undefined, signal ? { signal } : undefined);
      if (gate) await gate.ask();
      signal?.throwIfAborted();
      const attemptController = new AbortController();
      const onAbort = () => attemptController.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        attemptController.abort(new Error('request timeout'));
      }, this.#timeoutMs);
      try {
        return (await this.#client.send(command as ClientCommand, { abortSignal: attemptController.signal })) as T;
      } catch (err) {
        if (signal?.aborted) throw err;
        if (err instanceof Lapsed) {
          attempt -= 1;
          lapses += 1;
          continue;
        }
        lapses = 0;
        const failure = timedOut ? timeoutError(operation, this.#timeoutMs) : err;
        const verdict = classify(failure);
        if (!verdict.retry || attempt >= this.#policy.attempts) {
          if (failure && typeof failure === 'object') Object.assign(failure, { attempts: attempt });
          throw failure;
        }
        const delayMs = backoffDelay(this.#policy, attempt, this.#random);
        this.#onRetry({ operation, bucket: input.Bucket, key: input.Key, attempt, code: verdict.code, delayMs });
        await sleep(delayMs, undefined, signal ? { signal } : undefined);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    }
  }
}

function timeoutError(operation: string, ms: number): Error {
  return Object.assign(new Error(`${operation}: no answer from S3 within ${ms} ms`), { name: 'RequestTimeout' });
}
