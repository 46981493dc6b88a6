import type { Writable } from 'node:stream';

/**
 * Calls back once each of `streams` (the `null`s skipped) can take more:
 * it drained, or it will never drain because it ended, closed or failed.
 * A wait on `'drain'` alone hangs forever when the stream is destroyed
 * under it (a gzip stream destroyed when its batch fails);
 * this is the wait `stream.pipeline` does. Listeners are removed after.
 */
export function whenWritable(streams: readonly (Writable | null)[], callback: () => void): void {
  const waiting = streams.filter((s): s is Writable => s !== null && !s.destroyed && !s.writableFinished && s.writableNeedDrain);
  let left = waiting.length;
  if (left === 0) {
    callback();
    return;
  }
  for (const stream of waiting) {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      stream.off('finish', done);
      if (--left === 0) callback();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
    stream.on('finish', done);
  }
}
