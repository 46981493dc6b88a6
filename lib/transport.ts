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
   * `attempts` says how many were made). `beforeAttempt` runs before each
   * attempt: what it throws stops the retries and is what `send` rejects with.
   */
  async send<T = unknown>(command: Command, signal?: AbortSignal, beforeAttempt?: () => Promise<void>): Promise<T> {
    const input = command.input as Input;
    const operation = command.constructor.name.replace(/Command$/, '');
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      if (beforeAttempt) await beforeAttempt();
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
