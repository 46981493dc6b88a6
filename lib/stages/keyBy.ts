import { Transform, type TransformCallback } from 'node:stream';
import type { Routed, SinkRecord } from '../batch.js';
import type { SinkContext } from '../context.js';
import { Router } from '../route.js';

/**
 * Stage 2: arrays of records → arrays of `Routed` (the lines of each destination, in order).
 *
 * Each event's destination is its own bucket/prefix, else the sink's default,
 * with a templated prefix filled from the event's JSON (or `deadLetterPrefix`
 * when it cannot be). Its payload becomes its line here (see framing.ts): this
 * is the last stage that looks inside payloads; from here on events are lines.
 * The rules are `Router`'s (route.ts); this stage groups what it routes.
 * With the `time` option each group also carries its lines' own times.
 */
export function keyBy(ctx: SinkContext): KeyBy {
  return new KeyBy(ctx);
}

export class KeyBy extends Transform {
  readonly #router: Router;
  readonly #timed: boolean;

  constructor(ctx: SinkContext) {
    super({ objectMode: true, highWaterMark: 4 });
    this.#router = new Router(ctx, { times: true });
    this.#timed = ctx.options.time !== null;
  }

  override _transform(events: SinkRecord[], _encoding: BufferEncoding, callback: TransformCallback): void {
    const groups = new Map<string, Routed>();
    for (const event of events) {
      const routed = this.#router.route(event);
      if (routed === null) continue;
      const { destination: dest, line, bytes } = routed;
      let group = groups.get(dest.id);
      if (!group) {
        // Made with its first line: an array grown by a push gets room for 17, and at a wide fan-out most groups keep one.
        group = { destination: dest, lines: [line], bytes, acks: event.ack === undefined ? null : [event.ack], times: this.#timed ? [routed.time as number] : undefined };
        groups.set(dest.id, group);
        continue;
      }
      // Acks cost nothing until an event has one; from then on they are kept one per line.
      if (event.ack !== undefined && group.acks === null) group.acks = new Array(group.lines.length).fill(undefined);
      group.acks?.push(event.ack);
      group.times?.push(routed.time as number);
      group.lines.push(line);
      group.bytes += bytes;
    }
    if (groups.size > 0) this.push([...groups.values()]);
    callback();
  }
}
