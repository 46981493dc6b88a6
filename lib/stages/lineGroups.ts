import { Transform, type TransformCallback } from 'node:stream';
import { destination, type Destination, type Routed } from '../batch.js';
import type { SinkContext } from '../context.js';
import type { Line } from '../framing.js';
import { LineSplitter, type Packed } from '../lines.js';
import { Router } from '../route.js';

/**
 * Stages 1 and 2 in one, for lines to one fixed destination: bytes in,
 * arrays of `Routed` out, what `parse` then `keyBy` would emit, except that
 * each chunk's regular stretch of lines comes as one entry, copied out of
 * the chunk in one go, or with `keepChunks` where it lies in the chunk
 * (`framedStretch`; `Routed.events` counts the lines; see
 * `LineSplitter.pushPacked`). `s3Sink` uses it in
 * their place when no line can go elsewhere (lines mode, a `bucket`, no
 * prefix template, no `time`): no object per line. Lines outside such a
 * stretch (the one carried over from the chunk before, every line of a
 * chunk with a `\r`, an empty or a too long line) go one by one through
 * keyBy's rules (`Router`), as through `parse` and `keyBy`.
 */
export function lineGroups(ctx: SinkContext): LineGroups {
  return new LineGroups(ctx);
}

/** The one destination of every line, when `lineGroups` can stand for `parse` and `keyBy` with these options; else `null`. */
export function fixedDestination(ctx: SinkContext): Destination | null {
  const { input, bucket, prefix, prefixTemplate, time } = ctx.options;
  return input === 'lines' && bucket !== undefined && !prefixTemplate && time === null ? destination(bucket, prefix) : null;
}

export class LineGroups extends Transform {
  readonly #ctx: SinkContext;
  readonly #splitter: LineSplitter;
  readonly #router: Router;
  readonly #destination: Destination;

  constructor(ctx: SinkContext) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    const dest = fixedDestination(ctx);
    if (dest === null) throw new TypeError('lineGroups needs lines mode, a bucket, no prefix template and no time option: use parse and keyBy');
    this.#ctx = ctx;
    this.#destination = dest;
    this.#splitter = new LineSplitter(ctx.options.maxLineBytes);
    this.#router = new Router(ctx);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#emit(this.#splitter.pushPacked(chunk));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#emit({ ...this.#splitter.end(), packed: null, packedLines: 0 });
    callback();
  }

  #emit({ lines, oversized, packed, packedLines }: Packed): void {
    // As in parse: a rejected line was read too.
    this.#ctx.counters.eventsIn += lines.length + packedLines + oversized.length;
    for (const o of oversized) {
      this.#ctx.reject('ERR_S3SINK_LINE_TOO_LONG', `line of ${o.bytes} bytes is longer than maxLineBytes (${this.#splitter.maxLineBytes})`, o.head);
    }
    const entries: Line[] = [];
    let bytes = 0;
    for (const payload of lines) {
      const routed = this.#router.route({ payload });
      if (routed === null) continue;
      entries.push(routed.line);
      bytes += routed.bytes;
    }
    const groups: Routed[] = [];
    if (entries.length > 0) groups.push({ destination: this.#destination, lines: entries, bytes, acks: null });
    if (packed !== null) groups.push({ destination: this.#destination, lines: [framedStretch(packed, this.#ctx.options.keepChunks)], bytes: packed.length + 1, acks: null, events: packedLines });
    if (groups.length > 0) this.push(groups);
  }
}

/**
 * A stretch of lines with its last \n right after it in the same memory,
 * which `join` then takes as it lies. Copied out of the chunk in one go,
 * during the write: a writer may fill its Buffer again once the write has
 * called back. With `keepChunks` (the writer never does), a stretch that is
 * at least half of its chunk's memory (nearly every chunk of log lines)
 * stays where it is, in the chunk: no copy, and no garbage for the collector.
 * A smaller one is copied all the same, so that a few lines do not keep a
 * large chunk alive, outside the budget, for as long as their batch is open:
 * a chunk kept alive is at most twice the bytes its stretch is counted for.
 */
function framedStretch(packed: Buffer, keepChunks: boolean): Buffer {
  // pushPacked's stretch ends right before a \n of the chunk.
  if (keepChunks && (packed.length + 1) * 2 >= packed.buffer.byteLength) return packed;
  const framed = Buffer.allocUnsafe(packed.length + 1);
  packed.copy(framed);
  framed[packed.length] = 10;
  return framed.subarray(0, packed.length);
}
