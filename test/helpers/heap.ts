import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * What each of `n` things `make` builds keeps on V8's heap, in bytes, with
 * collections forced before and after: the only way to see what a value
 * costs once the garbage of making it is gone. Returns the things too, so
 * that they stay alive until measured.
 */
export function heapPer<T>(n: number, make: (i: number) => T): { bytes: number; made: T[] } {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const made: T[] = new Array(n);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) made[i] = make(i);
  gc();
  return { bytes: (process.memoryUsage().heapUsed - before) / n, made };
}
