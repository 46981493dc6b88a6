import type { Clock } from '../../lib/clock.js';

/** A clock that moves only when told; due timers run synchronously inside `set`/`advance`. */
export class ManualClock implements Clock {
  #now: number;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers waiting to run. */
  get pending(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    this.set(this.#now + ms);
  }

  set(time: number): void {
    this.#now = time;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= time).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) return;
      this.#timers.delete(due[0]);
      due[1].fn();
    }
  }
}

/**
 * A clock that never moves: every event falls in one window, however long the
 * test runs (a test on the system clock that crosses a minute would see two objects).
 */
export function fixedClock(at = Date.UTC(2026, 0, 1, 12, 0, 30)): ManualClock {
  return new ManualClock(at);
}
