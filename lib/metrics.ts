import type { SinkStats } from './context.js';

/**
 * `stats()` in the Prometheus text exposition format (version 0.0.4), for a
 * `/metrics` endpoint. Names follow Prometheus's conventions: an `s3sink_`
 * namespace, base units (bytes), `_total` on counters; one metric per stat,
 * no labels (the stats overlap: summing delivered and rejected events would
 * mean nothing). A small writer of our own rather than prom-client: the
 * stats are a flat object of numbers read at scrape time, and the format is
 * a few lines of text (see the README's dependency section).
 */

type Kind = 'counter' | 'gauge';

/** Every stat, its metric name, type and help. `satisfies` makes a new stat without a metric a type error. */
const METRICS = {
  eventsIn: ['s3sink_events_total', 'counter', 'Events accepted (parsed from lines, or records written), rejected ones included.'],
  eventsOut: ['s3sink_events_delivered_total', 'counter', 'Events in completed S3 objects.'],
  rejected: ['s3sink_events_rejected_total', 'counter', 'Events rejected (too long, no JSON form, wrong shape).'],
  unrouted: ['s3sink_events_unrouted_total', 'counter', 'Events sent to the dead-letter prefix because their templated prefix could not be filled.'],
  untimed: ['s3sink_events_untimed_total', 'counter', 'Events without a usable time of their own (time option), batched by arrival.'],
  late: ['s3sink_events_late_total', 'counter', 'Events that came later than their window end plus time.lateMs (time option), into a batch opened late for their window.'],
  deadLetteredEvents: ['s3sink_events_dead_lettered_total', 'counter', 'Events in batches given up on and kept as dead letters.'],
  lostEvents: ['s3sink_events_lost_total', 'counter', 'Events in batches given up on with no place to keep them: not delivered.'],
  spooledEvents: ['s3sink_events_spooled_total', 'counter', 'Events written to the spool.'],
  durableEvents: ['s3sink_events_durable_total', 'counter', 'Events made durable in the spool per its fsync policy.'],
  recoveredEvents: ['s3sink_events_recovered_total', 'counter', 'Events an earlier run left in the spool, delivered by this one.'],
  bytesIn: ['s3sink_bytes_total', 'counter', 'Line bytes accepted, uncompressed.'],
  objects: ['s3sink_objects_total', 'counter', 'Completed S3 objects.'],
  bytesOut: ['s3sink_object_bytes_total', 'counter', 'Bytes of completed S3 objects, compressed.'],
  retries: ['s3sink_retries_total', 'counter', 'S3 requests retried.'],
  deadLettered: ['s3sink_batches_dead_lettered_total', 'counter', 'Batches given up on and kept as dead letters.'],
  lostBatches: ['s3sink_batches_lost_total', 'counter', 'Batches given up on with no place to keep them.'],
  recoveredBatches: ['s3sink_batches_recovered_total', 'counter', 'Batches an earlier run left in the spool, delivered by this one.'],
  redelivered: ['s3sink_batches_redelivered_total', 'counter', 'Times a batch whose upload failed in a way that can pass went back to the spool.'],
  fenced: ['s3sink_batches_fenced_total', 'counter', 'Batches not written because their input no longer owned them (Kafka: a partition taken over).'],
  orphansAborted: ['s3sink_orphan_uploads_aborted_total', 'counter', 'Multipart uploads of earlier runs aborted by the orphan sweep.'],
  openBatches: ['s3sink_open_batches', 'gauge', 'Batches open for new events.'],
  bufferedBytes: ['s3sink_buffered_bytes', 'gauge', 'Bytes held against the memory budget (maxBufferedBytes).'],
  peakBufferedBytes: ['s3sink_peak_buffered_bytes', 'gauge', 'The most bytes held against the memory budget so far.'],
  piecesInFlight: ['s3sink_pieces_in_flight', 'gauge', 'Pieces of streaming batches being compressed (parallelGzip), across all batches.'],
  peakPiecesInFlight: ['s3sink_peak_pieces_in_flight', 'gauge', 'The most pieces compressed at once so far (never more than the sink cap).'],
  uploadsInFlight: ['s3sink_uploads_in_flight', 'gauge', 'Objects being uploaded.'],
  spooledBytes: ['s3sink_spooled_bytes', 'gauge', 'Bytes of spool segments on disk.'],
} as const satisfies Record<keyof SinkStats, readonly [string, Kind, string]>;

/** The content type of `prometheusText`. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The stats as Prometheus text: `# HELP`, `# TYPE` and one sample per metric. */
export function prometheusText(stats: SinkStats): string {
  let text = '';
  for (const [stat, [name, kind, help]] of Object.entries(METRICS)) {
    text += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n${name} ${stats[stat as keyof SinkStats]}\n`;
  }
  return text;
}
