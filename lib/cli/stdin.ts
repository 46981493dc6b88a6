import { createReadStream, fstatSync } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * The process's stdin as a stream whose read errors reach the run. Node
 * hands over a stdin it cannot classify, a directory among them
 * (`s3-sink --bucket b < /some/dir`), as an empty stream: the run would end
 * at once with "0 events" and exit 0. Read from the descriptor itself, it
 * fails as it should (EISDIR), and the run reports that and exits 1.
 */
export function openStdin(): Readable {
  let directory = false;
  try {
    directory = fstatSync(0).isDirectory();
  } catch {
    // No descriptor 0 at all: Node's own stdin deals with that.
  }
  return directory ? createReadStream('', { fd: 0, autoClose: false }) : process.stdin;
}
