/**
 * Time as the sink sees it. Windows, key timestamps and the timer that closes
 * a window all go through this, so tests can inject a clock they advance by hand.
 */
export interface Clock {
  /** Milliseconds since the epoch (UTC). */
  now(): number;
  /** Runs `fn` once after `ms`; the handle goes to `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
  clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
});
