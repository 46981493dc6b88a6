import type { Batch, LinesPiece, Routed } from '../../lib/batch.js';
import { SinkContext } from '../../lib/context.js';
import type { SinkOptions } from '../../lib/options.js';
import { window } from '../../lib/stages/window.js';
import { ManualClock } from './clock.js';

/**
 * A maker of window stages alone, each on a manual clock starting at `at`,
 * for the tests of a file (their contexts disposed after each test): what a
 * stage pushes gathers in `out`, and `write` resolves once it took the groups.
 */
export function windowStages(test: { afterEach: { always(fn: () => void): void } }, at: number, defaults: SinkOptions = {}) {
  const made: SinkContext[] = [];
  test.afterEach.always(() => made.splice(0).forEach((ctx) => ctx.dispose()));
  return (options: SinkOptions = {}) => {
    const clock = new ManualClock(at);
    const ctx = new SinkContext({ bucket: 'bucket', clock, s3: { region: 'us-east-1' }, ...defaults, ...options });
    made.push(ctx);
    const stage = window(ctx);
    const out: LinesPiece[] = [];
    stage.on('data', (pieces: LinesPiece[]) => out.push(...pieces));
    const write = (groups: Routed[]) => new Promise<void>((resolve, reject) => stage.write(groups, (err) => (err ? reject(err) : resolve())));
    return { clock, ctx, stage, out, write };
  };
}

/** The lines each batch received, and whether it ended, in order of opening; throws on lines after their batch's end. */
export function batchesOf(out: LinesPiece[]): { batch: Batch; lines: string[]; ended: boolean }[] {
  const seen = new Map<Batch, { batch: Batch; lines: string[]; ended: boolean }>();
  for (const piece of out) {
    const entry = seen.get(piece.batch) ?? { batch: piece.batch, lines: [], ended: false };
    seen.set(piece.batch, entry);
    if ('end' in piece) entry.ended = true;
    else if (entry.ended) throw new Error('lines after the end of their batch');
    else entry.lines.push(...(piece.lines as string[]));
  }
  return [...seen.values()];
}
