import { closeSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';

/**
 * `Idempotency-Key`: a request sent again with the key of one that got 200
 * gets the same answer, and its events are not taken a second time.
 *
 * - A key is remembered from its request's 200 for `ttlMs`, at most
 *   `maxKeys` of them (the oldest are forgotten first).
 * - A key whose request is still under way makes a second request with it
 *   wait for the first one's answer, and get the same.
 * - A request that did not get 200 (429, 503, ...) leaves its key free: the
 *   retry is taken as new (nothing of the first was).
 * - The same key with another body is refused (422): a client bug, and
 *   answering it with the first body's result would hide it.
 * - With a file (in the spool directory), keys are appended to it as each
 *   200 goes out, before the answer, so they survive `kill -9` and a restart
 *   on the same spool. The write is a `write(2)` to the page cache, not
 *   fsynced: a power loss may forget the last keys (their retries are then
 *   taken again: at least once, never lost). The file is compacted at start
 *   and whenever it holds many more lines than live keys.
 */

export interface Outcome {
  status: number;
  body: string;
}

interface Entry {
  hash: string;
  /** When its 200 went out (ms); 0 while under way. */
  at: number;
  /** The answer, once there is one. */
  result: Outcome | null;
  outcome: Promise<Outcome>;
}

export type Claim =
  | { kind: 'run'; finish(outcome: Outcome): void }
  | { kind: 'replay'; outcome: Promise<Outcome> }
  | { kind: 'mismatch' };

export interface IdempotencyOptions {
  ttlMs: number;
  maxKeys: number;
  /** Where keys are kept across restarts; `null`: in memory only. */
  file: string | null;
  now: () => number;
  /** A write to the file failed: the key is still remembered, in memory. */
  warn(message: string): void;
}

export class IdempotencyKeys {
  readonly #options: IdempotencyOptions;
  /** In the order the keys were claimed (about the order of their answers). */
  readonly #entries = new Map<string, Entry>();
  #fd: number | null = null;
  /** Lines in the file. */
  #lines = 0;

  constructor(options: IdempotencyOptions) {
    this.#options = options;
    if (options.file !== null) this.#load(options.file);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** What to do with a request carrying `key` and a body whose digest is `hash`. */
  claim(key: string, hash: string): Claim {
    this.#expire();
    const entry = this.#entries.get(key);
    if (entry) return entry.hash !== hash ? { kind: 'mismatch' } : { kind: 'replay', outcome: entry.outcome };
    let resolve: (outcome: Outcome) => void = () => {};
    const created: Entry = { hash, at: 0, result: null, outcome: new Promise((r) => (resolve = r)) };
    this.#entries.set(key, created);
    return {
      kind: 'run',
      finish: (outcome) => {
        if (outcome.status === 200) {
          created.at = this.#options.now();
          created.result = outcome;
          this.#append(key, created);
        } else if (this.#entries.get(key) === created) {
          this.#entries.delete(key);
        }
        resolve(outcome);
      },
    };
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  #expire(): void {
    const oldest = this.#options.now() - this.#options.ttlMs;
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size > this.#options.maxKeys || (entry.at !== 0 && entry.at < oldest)) this.#entries.delete(key);
      else if (entry.at !== 0) break;
    }
  }

  #append(key: string, entry: Entry): void {
    const file = this.#options.file;
    if (file === null) return;
    try {
      if (this.#lines > Math.max(1024, 2 * this.#entries.size)) this.#compact(file);
      this.#fd ??= openSync(file, 'a');
      writeSync(this.#fd, line(key, entry));
      this.#lines += 1;
    } catch (err) {
      // The request's events are durable and its answer is 200 all the same; only a restart would forget the key.
      this.#options.warn(`could not write Idempotency-Key ${JSON.stringify(key)} to ${file}: ${(err as Error).message}; it is remembered until a restart`);
    }
  }

  #load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const oldest = this.#options.now() - this.#options.ttlMs;
    for (const line of text.split('\n')) {
      let saved: { k?: unknown; h?: unknown; t?: unknown; s?: unknown; b?: unknown };
      try {
        saved = JSON.parse(line) as typeof saved;
      } catch {
        continue; // a line cut short by a crash
      }
      if (typeof saved.k !== 'string' || typeof saved.h !== 'string' || typeof saved.t !== 'number' || typeof saved.s !== 'number' || typeof saved.b !== 'string') continue;
      if (saved.t < oldest) continue;
      this.#entries.delete(saved.k);
      const result = { status: saved.s, body: saved.b };
      this.#entries.set(saved.k, { hash: saved.h, at: saved.t, result, outcome: Promise.resolve(result) });
    }
    this.#expire();
    this.#compact(file);
  }

  /** Rewrites the file with the live keys only (a new file renamed over the old one). */
  #compact(file: string): void {
    this.close();
    const temporary = `${file}.new`;
    const fd = openSync(temporary, 'w');
    try {
      let lines = 0;
      for (const [key, entry] of this.#entries) {
        if (entry.result === null) continue; // under way: written when it is answered
        writeSync(fd, line(key, entry));
        lines += 1;
      }
      this.#lines = lines;
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  }
}

function line(key: string, entry: Entry): string {
  const { status, body } = entry.result as Outcome;
  return `${JSON.stringify({ k: key, h: entry.hash, t: entry.at, s: status, b: body })}\n`;
}
