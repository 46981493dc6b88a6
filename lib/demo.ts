import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Receipt } from './context.js';
import { startLocalS3 } from './localS3.js';
import { s3Sink } from './sink.js';

/**
 * The main job on an embedded S3, no AWS account: sample events from three
 * services fan out by `{service}`, are batched, gzipped and uploaded; the keys
 * that landed and the first lines of one object are printed.
 */
export async function runDemo(out: NodeJS.WritableStream = process.stdout, events = 30_000): Promise<Receipt[]> {
  const bucket = 'demo-bucket';
  const s3 = await startLocalS3({ buckets: [bucket] });
  const receipts: Receipt[] = [];
  try {
    out.write(`embedded S3 (s3rver) at ${s3.endpoint}, bucket ${bucket}\n`);
    const sink = s3Sink({ bucket, prefix: 'app/{service}/', s3: s3.s3Config });
    sink.on('object', (receipt) => receipts.push(receipt));
    const services = ['api', 'billing', 'search'];
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < events; i++) {
            const service = services[i % services.length];
            yield { payload: { ts: new Date(Date.UTC(2026, 0, 1) + i).toISOString(), service, level: i % 50 === 0 ? 'warn' : 'info', msg: `request ${i} served`, ms: i % 97 } };
          }
        })(),
      ),
      sink,
    );
    out.write(`${events} events → ${receipts.length} objects:\n`);
    for (const r of receipts.sort((a, b) => a.key.localeCompare(b.key))) {
      out.write(`  s3://${r.bucket}/${r.key}  ${r.events} events, ${r.bytes} bytes → ${r.compressedBytes} gzipped\n`);
    }
    const first = receipts[0];
    if (first) {
      const client = new S3Client(s3.s3Config);
      try {
        const object = await client.send(new GetObjectCommand({ Bucket: first.bucket, Key: first.key }));
        const body = gunzipSync(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
        out.write(`first lines of ${first.key}:\n`);
        for (const line of body.toString('utf8').split('\n').slice(0, 3)) out.write(`  ${line}\n`);
      } finally {
        client.destroy();
      }
    }
    return receipts;
  } finally {
    await s3.close();
  }
}
