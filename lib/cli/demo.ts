import { Readable } from 'node:stream';
import { startLocalS3 } from '../localS3.js';
import type { Io, RunResult } from './run.js';
import { runSink } from './run.js';

/** Sample log lines from three services, as a log shipper would write them to stdout. */
export function sampleLines(count: number, start = Date.UTC(2026, 0, 1)): Readable {
  const services = ['api', 'billing', 'search'];
  let i = 0;
  return new Readable({
    read() {
      if (i >= count) {
        this.push(null);
        return;
      }
      let chunk = '';
      for (const end = Math.min(count, i + 500); i < end; i++) {
        chunk += `${JSON.stringify({ ts: new Date(start + i).toISOString(), service: services[i % services.length], level: i % 50 === 0 ? 'warn' : 'info', msg: `request ${i} served`, ms: i % 97 })}\n`;
      }
      this.push(chunk);
    },
  });
}

/**
 * `s3-sink demo`: the main job on an embedded S3 (s3rver), no AWS account.
 * 30 000 JSON lines go through the same code as stdin, fanning out by
 * `app/{service}/`; the keys that landed are printed on stdout.
 */
export async function runDemo(io: Io, stdout: NodeJS.WritableStream, quiet: boolean): Promise<RunResult> {
  const bucket = 'demo-bucket';
  const s3 = await startLocalS3({ buckets: [bucket] });
  try {
    if (!quiet) io.stderr.write(`s3-sink: demo: embedded S3 (s3rver) at ${s3.endpoint}, bucket ${bucket}\n`);
    const result = await runSink(
      { kind: 'run', sink: { bucket, prefix: 'app/{service}/', input: 'lines', windowMs: 3_600_000 }, endpoint: s3.endpoint, region: undefined, checksum: undefined, check: true, quiet },
      sampleLines(30_000),
      io,
      { credentials: s3.s3Config.credentials },
    );
    for (const r of [...result.receipts].sort((a, b) => a.key.localeCompare(b.key))) {
      stdout.write(`s3://${r.bucket}/${r.key}\t${r.events} events\t${r.bytes} bytes\t${r.compressedBytes} gzipped\n`);
    }
    return result;
  } finally {
    await s3.close();
  }
}
