import type { Receipt, Rejection, SinkStats, SinkWarning, SweepResult } from '../context.js';
import type { DeadLetter } from '../deadLetter.js';
import { formatBytes } from './units.js';

/**
 * What the CLI says on stderr (stdout stays clean for the data).
 * On a TTY: one live status line. Otherwise: a line per object.
 * Either way: rejections (the first few), notes, and a final summary.
 * `quiet` keeps only errors and notes about shutdown.
 */

const SHOWN_REJECTIONS = 10;

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class Progress {
  readonly #out: ProgressOutput;
  readonly #quiet: boolean;
  readonly #stats: () => SinkStats;
  readonly #started = performance.now();
  #timer: NodeJS.Timeout | null = null;
  #statusShown = false;
  #last = { at: performance.now(), events: 0, bytes: 0 };
  #rejections = 0;

  constructor(out: ProgressOutput, stats: () => SinkStats, quiet: boolean) {
    this.#out = out;
    this.#stats = stats;
    this.#quiet = quiet;
  }

  get live(): boolean {
    return !this.#quiet && this.#out.isTTY === true;
  }

  start(): void {
    if (!this.live) return;
    this.#timer = setInterval(() => this.tick(), 500);
    this.#timer.unref();
  }

  object(receipt: Receipt): void {
    if (this.#quiet || this.live) return;
    this.#line(`wrote s3://${receipt.bucket}/${receipt.key} (${receipt.events} events, ${formatBytes(receipt.bytes)} → ${formatBytes(receipt.compressedBytes)})`);
  }

  rejected(rejection: Rejection): void {
    this.#rejections += 1;
    if (this.#quiet || this.#rejections > SHOWN_REJECTIONS) return;
    const more = this.#rejections === SHOWN_REJECTIONS ? ' (further rejections are only counted)' : '';
    this.#line(`rejected: ${rejection.reason}: ${JSON.stringify(rejection.head)}${more}`);
  }

  /** A batch given up on: always said (it is not in S3). */
  deadLetter(letter: DeadLetter): void {
    const where = letter.path === null ? 'not delivered, nowhere to keep it (use --spool-dir or --dead-letter-dir)' : `written to ${letter.path}`;
    this.#line(`dead letter: s3://${letter.bucket}/${letter.key} (${letter.events} events) ${where}: ${letter.code}`);
  }

  /** Always said: the operator should know. */
  warning(warning: SinkWarning): void {
    this.#line(`warning: ${warning.message}`);
  }

  swept(result: SweepResult): void {
    if (this.#quiet) return;
    this.#line(`orphan sweep of s3://${result.bucket} (${result.prefixes.map((p) => p || '/').join(', ')}): aborted ${result.aborted} of ${result.found} multipart uploads left behind`);
  }

  /** A line that prints even with --quiet (signals, failures). */
  note(text: string): void {
    this.#line(text);
  }

  /** Stops the status line and prints the summary (unless quiet). */
  finish(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#quiet) {
      this.#clearStatus();
      return;
    }
    const s = this.#stats();
    const seconds = (performance.now() - this.#started) / 1000;
    const extra = [
      s.rejected ? `${s.rejected} rejected` : '',
      s.unrouted ? `${s.unrouted} to the dead-letter prefix` : '',
      s.untimed ? `${s.untimed} without a usable time (batched by arrival)` : '',
      s.late ? `${s.late} late` : '',
      s.retries ? `${s.retries} retries` : '',
      s.deadLettered ? `${s.deadLetteredEvents} events in ${s.deadLettered} dead letters on disk` : '',
    ]
      .filter(Boolean)
      .join(', ');
    this.#line(`done: ${s.eventsOut} events in ${s.objects} objects, ${formatBytes(s.bytesIn)} in → ${formatBytes(s.bytesOut)} gzipped, ${seconds.toFixed(1)} s${extra ? `; ${extra}` : ''}`);
  }

  /**
   * What was read but is not in S3, for failures and hard exits. `read`
   * counts every event read, those still in stream buffers before the sink
   * parsed them included (the sink's `eventsIn` has not seen those yet).
   * Everything not in a completed object counts: rejected events and
   * batches in dead letters on disk are not delivered either, and are named.
   */
  undelivered(read: number): string {
    const s = this.#stats();
    const where = [
      s.rejected ? `${s.rejected} rejected` : '',
      s.deadLetteredEvents ? `${s.deadLetteredEvents} in dead letters on disk` : '',
      s.lostEvents ? `${s.lostEvents} in batches given up on with nowhere to keep them` : '',
      `${s.openBatches} batches open, ${formatBytes(s.bufferedBytes)} buffered, ${s.uploadsInFlight} uploads cut off`,
    ];
    // Events an earlier run left in the spool are in eventsOut too, but were not read by this one.
    return `not delivered: ${Math.max(0, read - (s.eventsOut - s.recoveredEvents))} of ${read} events read (${where.filter(Boolean).join(', ')})`;
  }

  /** Redraws the status line (every 500 ms on a TTY). */
  tick(): void {
    const s = this.#stats();
    const now = performance.now();
    const dt = Math.max(0.001, (now - this.#last.at) / 1000);
    const rate = (s.eventsIn - this.#last.events) / dt;
    const mb = (s.bytesIn - this.#last.bytes) / dt / 1e6;
    this.#last = { at: now, events: s.eventsIn, bytes: s.bytesIn };
    this.#out.write(`\r\u001b[Ks3-sink: ${Math.round(rate)} events/s, ${mb.toFixed(1)} MB/s in, ${s.objects} objects written, ${formatBytes(s.bufferedBytes)} buffered`);
    this.#statusShown = true;
  }

  #clearStatus(): void {
    if (this.#statusShown) this.#out.write('\r\u001b[K');
    this.#statusShown = false;
  }

  #line(text: string): void {
    this.#clearStatus();
    this.#out.write(`s3-sink: ${text}\n`);
  }
}
