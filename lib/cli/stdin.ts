import { createReadStream, fstatSync } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * How much of a file on stdin is read at a time (`s3-sink ... < events.log`).
 * Node reads 64 KiB. Each chunk passes every stage as one array: at a wide
 * fan-out a chunk gives each destination a group of its own, whose cost is
 * per group, not per byte. Measured on 2 vCPUs, 200 MiB, 3 alternated runs
 * (README, Performance): 1 000 destinations 4.99–5.12 s against 5.37–5.45,
 * one destination 1.85–1.96 against 1.96–2.04, peak RSS much the same. 256 KiB
 * held about 30 MiB more (its one slow run, 6.10 s, may have crossed a UTC
 * minute), and was not taken for that. A pipe gives at most what it holds
 * (64 KiB on Linux) per read.
 */
export const FILE_READ_BYTES = 128 * 1024;

/**
 * The process's stdin (`fd`: its descriptor) as a stream whose read errors
 * reach the run. Node hands over a stdin it cannot classify, a directory
 * among them (`s3-sink --bucket b < /some/dir`), as an empty stream: the run
 * would end at once with "0 events" and exit 0. Read from the descriptor
 * itself, it fails as it should (EISDIR), and the run reports that and exits
 * 1. A file is read FILE_READ_BYTES at a time; anything else (a pipe, a
 * terminal, a socket) is Node's own stdin.
 */
export function openStdin(fd = 0): Readable {
  let kind: 'file' | 'directory' | 'other' = 'other';
  try {
    const stat = fstatSync(fd);
    kind = stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : 'other';
  } catch {
    // No descriptor at all: Node's own stdin deals with that.
  }
  if (kind === 'other') return process.stdin;
  return createReadStream('', { fd, autoClose: false, ...(kind === 'file' ? { highWaterMark: FILE_READ_BYTES } : {}) });
}
