import type { LogBatch } from './batcher.js';

/**
 * A closed log batch on its way to S3: safe once each of its objects is.
 * Only its offsets: its lines are the chain's (and the budget's) once they
 * are in it, and must not be held here until the batch is safe.
 */
export interface Pending {
  readonly batch: Pick<LogBatch, 'first' | 'last'>;
  /** Keys of its objects not yet safe (delivered, or durable in the spool). */
  readonly waiting: Set<string>;
}

/**
 * The pure core of offset commits for one partition: the closed batches not
 * yet safe, in offset order, and the offset below which every record is safe.
 * Batches become safe in any order; the committed offset only moves past a
 * batch once it and every batch before it are safe. It is always the first
 * offset of a batch (or the offset after the last record read), so a reader
 * starting there starts a batch where this worker did.
 */
export class Frontier {
  readonly #pending: Pending[] = [];

  /** How many closed batches are not yet safe. */
  get size(): number {
    return this.#pending.length;
  }

  add(pending: Pending): void {
    this.#pending.push(pending);
  }

  /**
   * The offset to commit: the first offset of the oldest batch not yet safe,
   * else of the open batch (`open`), else `next` (the offset after the last
   * record read), else `committed`.
   */
  offset(open: LogBatch | null, next: number, committed: number): number {
    while (this.#pending.length > 0 && (this.#pending[0] as Pending).waiting.size === 0) this.#pending.shift();
    const oldest = this.#pending[0];
    if (oldest !== undefined) return oldest.batch.first;
    if (open !== null) return open.first;
    return next >= 0 ? next : committed;
  }

  /** Every closed batch is safe. */
  get settled(): boolean {
    return this.#pending.every((p) => p.waiting.size === 0);
  }
}
