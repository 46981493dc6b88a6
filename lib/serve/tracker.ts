/**
 * Per-request acknowledgement: every event of a request carries the
 * request's `Tracker` as its `ack` (one object for all of them: acks ride
 * with the events and are held until they come back, so a shared reference
 * costs a pointer per event and no allocation). The request is answered once
 * each of its events came back: `'durable'` (or `'delivered'`), or rejected,
 * or (waiting for delivery) dead-lettered.
 */

/** What the response says about an event of the request that was not taken as it was. */
export interface Problem {
  /** `ERR_S3SINK_...` of a rejected event, `S3SINK_UNROUTED` for one sent to the dead-letter prefix, `S3SINK_DEAD_LETTER` for one given up on. */
  code: string;
  reason: string;
  /** The event's first bytes (a rejected event). */
  head?: string;
  /** Where it went instead (the dead-letter prefix, or the dead-letter file). */
  to?: string | null;
}

/** At most this many problems are listed in one response (all are counted). */
export const MAX_PROBLEMS = 100;

export class Tracker {
  readonly events: number;
  #remaining: number;
  rejected = 0;
  unrouted = 0;
  /** Waiting for delivery: events given up on and kept on disk (dead letters). */
  deadLettered = 0;
  /** Waiting for delivery: events given up on with nowhere to keep them. */
  lost = 0;
  readonly problems: Problem[] = [];
  readonly done: Promise<void>;
  #resolve: () => void = () => {};

  constructor(events: number) {
    this.events = events;
    this.#remaining = events;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    if (events === 0) this.#resolve();
  }

  /** One event came back (durable, delivered, rejected or given up on). */
  settle(): void {
    this.#remaining -= 1;
    if (this.#remaining === 0) this.#resolve();
  }

  note(problem: Problem): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(problem);
  }

  /** The 200 answer's body. */
  summary(ack: 'durable' | 'delivered'): Record<string, unknown> {
    const out: Record<string, unknown> = { ack, events: this.events, rejected: this.rejected, unrouted: this.unrouted };
    if (ack === 'delivered') Object.assign(out, { deadLettered: this.deadLettered, lost: this.lost });
    out.problems = this.problems;
    return out;
  }
}

/** Calls `settle` for every ack that is a request's tracker (acks of other writers, or of an earlier run, are not). */
export function settleAll(acks: readonly unknown[]): void {
  for (const ack of acks) if (ack instanceof Tracker) ack.settle();
}
