import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Resolves once `condition()` holds, checking after every turn of the event
 * loop: for states no event announces (how far a chunk has travelled through
 * the stages). Fails after `ms`.
 */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await nextTurn();
  }
}

/** The next `count` emissions of `event`. */
export function collect<T>(emitter: NodeJS.EventEmitter, event: string, count: number): Promise<T[]> {
  return new Promise((resolve) => {
    const seen: T[] = [];
    const on = (value: T) => {
      seen.push(value);
      if (seen.length === count) {
        emitter.off(event, on);
        resolve(seen);
      }
    };
    emitter.on(event, on);
  });
}
