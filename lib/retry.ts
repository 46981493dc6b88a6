/**
 * Which S3 failures are worth another try, and how long to wait before it.
 * Plain data and pure functions: the transport applies them; nothing here
 * knows about uploads.
 */

/** Capped exponential backoff with full jitter: attempt n (n ≥ 1) waits `random × min(capMs, baseMs × 2^(n-1))`. */
export interface RetryPolicy {
  /** Tries per request, the first included (1 = never retry). */
  readonly attempts: number;
  readonly baseMs: number;
  readonly capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ attempts: 10, baseMs: 200, capMs: 20_000 });

/**
 * The wait before retry number `retry` (1 for the first retry). Full jitter
 * (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): many
 * clients throttled at once spread out instead of retrying in lockstep.
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(retry - 1, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The longest one request can take, every retry included: each of `attempts`
 * tries cut off at `timeoutMs`, and the longest wait before each retry.
 */
export function longestRequestMs(policy: RetryPolicy, timeoutMs: number): number {
  let total = policy.attempts * timeoutMs;
  for (let retry = 1; retry < policy.attempts; retry++) total += backoffDelay(policy, retry, () => 1);
  return total;
}

export type Verdict = { retry: true; code: string } | { retry: false; code: string };

const RETRYABLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'ExpiredToken',
  'ExpiredTokenException',
  'IDPCommunicationError',
]);

const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'UND_ERR_SOCKET']);

/**
 * Retry 5xx, throttling (SlowDown, 429), S3's RequestTimeout, timeouts and
 * broken connections; never 4xx such as AccessDenied (403), NoSuchBucket,
 * InvalidAccessKeyId, or a store's NotImplemented (501) and MethodNotAllowed
 * (405): those fail the same way every time.
 */
export function classify(err: unknown): Verdict {
  const e = (err ?? {}) as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown; cause?: unknown; message?: string };
  const status = e.$metadata?.httpStatusCode;
  const code = (typeof e.Code === 'string' && e.Code) || (e.name && e.name !== 'Error' ? e.name : undefined) || e.code || (status ? `HTTP ${status}` : 'Error');
  if (code === 'NotImplemented' || code === 'MethodNotAllowed' || status === 501 || status === 405) return { retry: false, code };
  if (RETRYABLE_CODES.has(code)) return { retry: true, code };
  if (status !== undefined && (status >= 500 || status === 429)) return { retry: true, code };
  if (typeof e.code === 'string' && RETRYABLE_NETWORK.has(e.code)) return { retry: true, code: e.code };
  if (status === undefined && /socket hang up|ECONNRESET|EPIPE|network|premature close/i.test(e.message ?? '')) return { retry: true, code };
  if (e.cause && e.cause !== err) {
    const inner = classify(e.cause);
    if (inner.retry) return inner;
  }
  return { retry: false, code };
}
