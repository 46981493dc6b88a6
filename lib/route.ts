import { destination, type Destination, type SinkRecord } from './batch.js';
import type { SinkContext } from './context.js';
import { messageOf } from './errors.js';
import { timeValue, type TimeOf } from './eventTime.js';
import { fieldReader, NOT_JSON, type FieldReader, type Fields } from './fields.js';
import { encodeLine, lineBytes, type Line, type PayloadError } from './framing.js';
import { checkPrefix } from './key.js';
import { bucketNameProblem } from './options.js';
import type { MetaValues } from './template.js';

/** An event with its destination and its line. */
export interface RoutedEvent {
  destination: Destination;
  line: Line;
  /** `lineBytes(line)`. */
  bytes: number;
  /**
   * Its own time (ms since epoch), from a router that reads times (the `time`
   * option); `NaN` when it has no usable one (it follows its arrival).
   * Absent when times are not read.
   */
  time?: number;
}

/** Entries the router keeps: prefixes as given (across all buckets), and record buckets. */
const CACHE_LIMIT = 4096;
/**
 * A prefix or bucket as given longer than this is checked every time and
 * never kept: no valid one comes near (a bucket is at most 63 characters, a
 * prefix 920 bytes once normalised), so only invalid ones do, and a stream of
 * them must not fill the caches with their text.
 */
export const CACHE_KEY_CHARS = 1024;

/**
 * The pure core of `keyBy`, shared by every input (streams, Kafka): an
 * event's destination is its own bucket/prefix, else the sink's default, with
 * a templated prefix filled from the event's JSON (or `deadLetterPrefix` when
 * it cannot be). Its payload becomes its line (see framing.ts). An event
 * that cannot be routed or has no line is reported (`ctx.reject`, with its
 * ack) and `route` gives `null`: the events around it go on.
 *
 * Asked to (`times: true`, what `keyBy` asks) and with the `time` option, it
 * also reads each event's own time: a time field in the same pass over the
 * line as the template's fields, or the option's function. An event routed
 * without a usable time is counted in `untimed`. An input that batches by
 * times of its own (Kafka: record timestamps) does not ask.
 */
export class Router {
  readonly #ctx: SinkContext;
  readonly #default: Destination | null;
  /** bucket → prefix as given → destination (or why that prefix cannot be one). */
  readonly #destinations = new Map<string, Map<string, Destination | { problem: string }>>();
  /** Entries of `#destinations`, all buckets together. */
  #prefixesKept = 0;
  readonly #buckets = new Map<string, string | null>();
  /**
   * With a time field: the template's fields (if any) and then the time
   * field, read in one pass; the time field alone, up to its first value
   * (nothing is routed by it, so the rest of the line need not be checked).
   */
  readonly #fields: FieldReader | null = null;
  readonly #timeOf: TimeOf | null = null;

  constructor(ctx: SinkContext, { times = false }: { times?: boolean } = {}) {
    this.#ctx = ctx;
    const { bucket, prefix, prefixTemplate, time } = ctx.options;
    this.#default = bucket !== undefined && !prefixTemplate ? destination(bucket, prefix) : null;
    if (times && time?.field) this.#fields = fieldReader([...(prefixTemplate?.fields ?? []), time.field], { first: !prefixTemplate });
    if (times && time?.get) this.#timeOf = time.get;
  }

  /** `meta`: the values of the template's `{kafka:...}` placeholders for this event (Kafka workers). */
  route(event: SinkRecord, meta?: MetaValues): RoutedEvent | null {
    // The line first: an event with no line, or too long a one, is rejected before it counts as unrouted.
    let line;
    try {
      line = encodeLine(event.payload);
    } catch (err) {
      this.#ctx.reject((err as PayloadError).code ?? 'ERR_S3SINK_PAYLOAD', (err as Error).message, headOf(event.payload), event.ack);
      return null;
    }
    const bytes = lineBytes(line);
    const { maxLineBytes } = this.#ctx.options;
    if (bytes - 1 > maxLineBytes) {
      this.#ctx.reject('ERR_S3SINK_LINE_TOO_LONG', `event of ${bytes - 1} bytes is longer than maxLineBytes (${maxLineBytes})`, typeof line === 'string' ? line.slice(0, 64) : line, event.ack);
      return null;
    }
    if (this.#fields === null && this.#timeOf === null) {
      const dest = this.#destinationOf(event, undefined, meta);
      return dest === null ? null : { destination: dest, line, bytes };
    }
    let fields: Fields | undefined;
    let time: number;
    if (this.#fields !== null) {
      fields = this.#fields.fromPayload(event.payload);
      time = fields === NOT_JSON ? NaN : timeValue(fields[this.#fields.paths.length - 1]);
    } else {
      time = this.#call(this.#timeOf as TimeOf, event.payload);
    }
    const dest = this.#destinationOf(event, fields, meta);
    if (dest === null) return null;
    if (time !== time) this.#ctx.counters.untimed += 1;
    return { destination: dest, line, bytes, time };
  }

  /** The time the option's function gives; one that throws gives none (said once: it is the user's code, and the event goes on). */
  #call(timeOf: TimeOf, payload: unknown): number {
    try {
      return timeValue(timeOf(payload));
    } catch (err) {
      this.#ctx.warn('S3SINK_TIME_FUNCTION', `the time option's function threw (${messageOf(err)}): such events are batched by arrival (stats().untimed counts them)`, true);
      return NaN;
    }
  }

  /** `fields`: what a reader of the template's fields (first) read of the event already, if one did. */
  #destinationOf(event: SinkRecord, fields: Fields | undefined, meta: MetaValues | undefined): Destination | null {
    if (event.bucket === undefined && event.prefix === undefined && this.#default) return this.#default;
    const options = this.#ctx.options;
    const bucket = event.bucket ?? options.bucket;
    if (bucket === undefined) {
      this.#ctx.reject('ERR_S3SINK_BUCKET', 'record has no bucket and the sink has no default bucket option', headOf(event.payload), event.ack);
      return null;
    }
    if (event.bucket !== undefined) {
      const problem = this.#bucketProblem(bucket);
      if (problem !== null) {
        this.#ctx.reject('ERR_S3SINK_BUCKET', `record bucket ${JSON.stringify(bucket)} is not an S3 bucket name: ${problem}`, headOf(event.payload), event.ack);
        return null;
      }
    }
    if (event.prefix !== undefined) {
      const dest = this.#destination(bucket, event.prefix);
      if ('problem' in dest) {
        this.#ctx.reject('ERR_S3SINK_RECORD', `record prefix ${JSON.stringify(event.prefix.slice(0, 60))} ${dest.problem}`, headOf(event.payload), event.ack);
        return null;
      }
      return dest;
    }
    if (options.prefixTemplate) {
      const filled = fields === undefined ? options.prefixTemplate.fillFromPayload(event.payload, meta) : options.prefixTemplate.fillFromFields(fields, meta);
      const dest = 'prefix' in filled ? this.#destination(bucket, filled.prefix) : null;
      if (dest !== null && !('problem' in dest)) return dest;
      this.#ctx.counters.unrouted += 1;
      const deadLetter = this.#destination(bucket, options.deadLetterPrefix) as Destination;
      if (event.ack !== undefined) {
        const reason = 'miss' in filled ? filled.miss : `prefix ${JSON.stringify(filled.prefix.slice(0, 60))} ${(dest as { problem: string }).problem}`;
        this.#ctx.report('unrouted', { ack: event.ack, reason, prefix: deadLetter.prefix });
      }
      return deadLetter;
    }
    return this.#destination(bucket, options.prefix) as Destination;
  }

  /** What the router keeps, for tests: prefixes as given (all buckets together) and record buckets. */
  get kept(): { prefixes: number; buckets: number } {
    return { prefixes: this.#prefixesKept, buckets: this.#buckets.size };
  }

  /** The destination for a bucket and a prefix as given (normalised and checked once, then kept), or why the prefix cannot be one. */
  #destination(bucket: string, rawPrefix: string): Destination | { problem: string } {
    if (rawPrefix.length > CACHE_KEY_CHARS) return checkedDestination(bucket, rawPrefix);
    let dest = this.#destinations.get(bucket)?.get(rawPrefix);
    if (dest === undefined) {
      if (this.#prefixesKept >= CACHE_LIMIT) {
        this.#destinations.clear();
        this.#prefixesKept = 0;
      }
      let prefixes = this.#destinations.get(bucket);
      if (!prefixes) {
        prefixes = new Map();
        this.#destinations.set(bucket, prefixes);
      }
      dest = checkedDestination(bucket, rawPrefix);
      prefixes.set(rawPrefix, dest);
      this.#prefixesKept += 1;
    }
    return dest;
  }

  #bucketProblem(bucket: string): string | null {
    if (bucket.length > CACHE_KEY_CHARS) return bucketNameProblem(bucket);
    let problem = this.#buckets.get(bucket);
    if (problem === undefined) {
      if (this.#buckets.size >= CACHE_LIMIT) this.#buckets.clear();
      problem = bucketNameProblem(bucket);
      this.#buckets.set(bucket, problem);
    }
    return problem;
  }
}

function checkedDestination(bucket: string, rawPrefix: string): Destination | { problem: string } {
  const checked = checkPrefix(rawPrefix);
  return 'prefix' in checked ? destination(bucket, checked.prefix) : checked;
}

function headOf(payload: unknown): string | Uint8Array {
  if (typeof payload === 'string' || payload instanceof Uint8Array) return payload.slice(0, 64);
  try {
    return String(JSON.stringify(payload)).slice(0, 64);
  } catch {
    return `${typeof payload} payload`;
  }
}
