/**
 * The server's own metrics, in the Prometheus text format beside the sink's
 * (`prometheusText(stats())`): requests by route and status, their latency
 * as a histogram (from the request's arrival to the end of its answer: for
 * `/v1/*`, mostly the wait for the events to be durable), body bytes, and
 * what is held now.
 */

/** Seconds: a durable answer takes a group commit (200 ms by default); a delivered one up to a window and an upload. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

interface Latency {
  counts: number[];
  sum: number;
  count: number;
}

export class ServeMetrics {
  /** `route status` → requests. */
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, Latency>();
  readonly #bodyBytes = new Map<string, number>();
  replays = 0;

  observe(route: string, status: number, seconds: number): void {
    const key = `${route} ${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let latency = this.#latency.get(route);
    if (!latency) {
      latency = { counts: new Array<number>(BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.#latency.set(route, latency);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] as number)) latency.counts[i] = (latency.counts[i] as number) + 1;
    latency.sum += seconds;
    latency.count += 1;
  }

  body(route: string, bytes: number): void {
    this.#bodyBytes.set(route, (this.#bodyBytes.get(route) ?? 0) + bytes);
  }

  text(now: { inFlight: number; pendingBytes: number; ready: boolean }): string {
    let out = '';
    const metric = (name: string, kind: string, help: string, samples: string[]) => {
      out += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n${samples.join('')}`;
    };
    metric('s3sink_http_requests_total', 'counter', 'HTTP requests answered, by route and status.', [...this.#requests].map(([key, n]) => {
      const [route, status] = key.split(' ');
      return `s3sink_http_requests_total{route="${route}",code="${status}"} ${n}\n`;
    }));
    metric('s3sink_http_request_duration_seconds', 'histogram', 'From a request\'s arrival to the end of its answer (for /v1/*: until its events are durable or delivered).', [...this.#latency].map(([route, l]) => {
      let samples = '';
      BUCKETS.forEach((le, i) => (samples += `s3sink_http_request_duration_seconds_bucket{route="${route}",le="${le}"} ${l.counts[i]}\n`));
      return `${samples}s3sink_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${l.count}\ns3sink_http_request_duration_seconds_sum{route="${route}"} ${l.sum}\ns3sink_http_request_duration_seconds_count{route="${route}"} ${l.count}\n`;
    }));
    metric('s3sink_http_request_body_bytes_total', 'counter', 'Request body bytes read (as sent, before decompression), by route.', [...this.#bodyBytes].map(([route, n]) => `s3sink_http_request_body_bytes_total{route="${route}"} ${n}\n`));
    metric('s3sink_http_idempotent_replays_total', 'counter', 'Requests answered from an earlier request with the same Idempotency-Key.', [`s3sink_http_idempotent_replays_total ${this.replays}\n`]);
    metric('s3sink_http_requests_in_flight', 'gauge', 'Requests being read or waiting for their events.', [`s3sink_http_requests_in_flight ${now.inFlight}\n`]);
    metric('s3sink_http_pending_bytes', 'gauge', 'Request body bytes held that the sink has not taken yet (maxPendingBytes bounds it).', [`s3sink_http_pending_bytes ${now.pendingBytes}\n`]);
    metric('s3sink_http_ready', 'gauge', '1 when /readyz answers 200.', [`s3sink_http_ready ${now.ready ? 1 : 0}\n`]);
    return out;
  }
}
