import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { GetObjectCommand, ListObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { startLocalS3, type LocalS3 } from '../../lib/localS3.js';
import { startProxy, type Proxy, type ProxyOptions } from './proxy.js';

const gunzipAsync = promisify(gunzip);

export interface TestS3 extends LocalS3 {
  /** A client of the test's own (not the sink's). */
  client: S3Client;
  /** Every key in `bucket` (ListObjects v1 with Marker: s3rver's v2 breaks past 1000 keys). */
  keys(bucket: string, prefix?: string): Promise<string[]>;
  /** An object's bytes, as stored (gzip). */
  raw(bucket: string, key: string): Promise<Buffer>;
  /** An object downloaded and gunzipped. */
  body(bucket: string, key: string): Promise<Buffer>;
  /** The lines of an object (without their `\n`); asserts the body ends with `\n`. */
  lines(bucket: string, key: string): Promise<string[]>;
  /** For JSON lines with a number `n`: each `n` under `prefix`, with how many times it appears. */
  countEvents(bucket: string, prefix: string): Promise<Map<number, number>>;
}

export async function startS3(buckets: string[] = ['bucket']): Promise<TestS3> {
  const local = await startLocalS3({ buckets });
  const client = new S3Client(local.s3Config);
  const raw = async (bucket: string, key: string) => {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  };
  const body = async (bucket: string, key: string) => gunzipAsync(await raw(bucket, key));
  const keys = async (bucket: string, prefix?: string) => {
    const found: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await client.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }));
      for (const o of page.Contents ?? []) found.push(o.Key as string);
      if (!page.IsTruncated || !page.Contents?.length) return found;
      marker = page.Contents[page.Contents.length - 1]?.Key;
    }
  };
  const lines = async (bucket: string, key: string) => {
    const text = (await body(bucket, key)).toString('utf8');
    if (!text.endsWith('\n')) throw new Error(`object ${key} does not end with a newline`);
    return text.slice(0, -1).split('\n');
  };
  return {
    ...local,
    client,
    keys,
    raw,
    body,
    lines,
    async countEvents(bucket, prefix) {
      const seen = new Map<number, number>();
      for (const key of await keys(bucket, prefix)) {
        for (const line of await lines(bucket, key)) {
          const { n } = JSON.parse(line) as { n: number };
          seen.set(n, (seen.get(n) ?? 0) + 1);
        }
      }
      return seen;
    },
    async close() {
      client.destroy();
      await local.close();
    },
  };
}

/**
 * An s3rver for every test of a file (and, with `proxy`, the fault proxy in
 * front of it), started before them and closed after.
 */
export function useLocalS3(
  test: { before(fn: () => Promise<void>): void; after: { always(fn: () => Promise<void>): void } },
  buckets: string[] = ['bucket'],
  proxy?: ProxyOptions,
): { s3: TestS3; proxy: Proxy } {
  const env = {} as { s3: TestS3; proxy: Proxy };
  test.before(async () => {
    env.s3 = await startS3(buckets);
    if (proxy) env.proxy = await startProxy(env.s3.port, proxy);
  });
  test.after.always(async () => {
    await env.proxy?.close();
    await env.s3?.close();
  });
  return env;
}
