import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SinkStats } from '../context.js';
import { prometheusText, PROMETHEUS_CONTENT_TYPE } from '../metrics.js';

/**
 * `--metrics-listen ADDR`: an HTTP server that answers `GET /metrics` with
 * the sink's stats as Prometheus text, read at each scrape. ADDR is `PORT`
 * (loopback: 127.0.0.1), `HOST:PORT` or `[IPv6]:PORT`; to expose it beyond
 * the host, name the host (`0.0.0.0:9464`).
 */

export interface ListenAddress {
  host: string;
  port: number;
}

/** `9464`, `0.0.0.0:9464`, `[::1]:9464` → where to listen; `null` when `text` is none of them. */
export function parseListen(text: string): ListenAddress | null {
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([\w.-]+)):)?(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65_535) return null;
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export interface MetricsServer {
  /** `http://HOST:PORT/metrics`, with the port it got (for port 0). */
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(address: ListenAddress, stats: () => SinkStats): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('s3-sink: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : prometheusText(stats()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Scrapers keep connections open; they must not keep the process alive once the run is over.
  server.unref();
  const { port, family } = server.address() as AddressInfo;
  const host = family === 'IPv6' ? `[${address.host}]` : address.host;
  return {
    url: `http://${host}:${port}/metrics`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
