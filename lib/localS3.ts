import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { S3SinkError } from './errors.js';

/**
 * An embedded S3 (s3rver) on a free port with a temporary directory: for the
 * demo, the tests and the benchmarks; no AWS account needed. s3rver is a
 * development dependency, loaded only when this is called.
 */
export interface LocalS3 {
  endpoint: string;
  port: number;
  directory: string;
  /** Client configuration that reaches it (path style, its fixed credentials). */
  s3Config: S3ClientConfig;
  close(): Promise<void>;
}

export async function startLocalS3(options: { buckets?: string[]; port?: number; directory?: string } = {}): Promise<LocalS3> {
  const { default: S3rver } = await import('s3rver').catch((err: unknown) => {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new S3SinkError('ERR_S3SINK_NO_S3RVER', 'the embedded S3 needs the s3rver package, a development dependency of s3-sink: npm install s3rver@3', { cause: err });
  });
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 's3-sink-s3rver-')));
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    directory,
    s3Config: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    },
    async close() {
      server.httpServer?.closeAllConnections();
      await server.close();
      if (options.directory === undefined) await rm(directory, { recursive: true, force: true });
    },
  };
}
