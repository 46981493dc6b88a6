import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * The headers that sign an S3 request with AWS Signature Version 4
 * (`x-amz-date`, `x-amz-content-sha256`, `authorization`), for
 * bench/put-cost.ts: what signing a PutObject ourselves would cost. The
 * canonical request signs every header given plus `host`, `x-amz-date` and
 * the body's SHA-256; `path` is taken as it is (no query string, segments
 * that need no encoding), header values are trimmed (inner spaces are not
 * collapsed). Enough for the benchmark's requests, not a general signer.
 */
export function signV4(method: string, host: string, path: string, headers: Record<string, string | number>, body: Buffer, region: string, credentials: Credentials, now = new Date()): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = createHash('sha256').update(body).digest('hex');
  const all: Record<string, string> = { host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  for (const [name, value] of Object.entries(headers)) all[name.toLowerCase()] = String(value).trim();
  const names = Object.keys(all).sort();
  const signedHeaders = names.join(';');
  const canonical = [method, path, '', ...names.map((name) => `${name}:${all[name]}`), '', signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = Buffer.from(`AWS4${credentials.secretAccessKey}`);
  for (const part of [day, region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return { 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash, authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
}

/** SHA-256 (or HMAC-SHA-256 with a secret) in the shape the SDK's signer takes. */
class Sha256 {
  readonly #hash;
  constructor(secret?: string | Uint8Array) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', secret);
  }
  update(data: string | Uint8Array): void {
    this.#hash.update(data);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
}

/**
 * Throws unless `signV4` gives the Authorization header the SDK's own signer
 * (`@smithy/signature-v4`, which `@aws-sdk/client-s3` brings) gives for the
 * same request at the same time. s3rver does not check SigV4 signatures (that
 * part of it is unimplemented), so this is what says `signV4` is right.
 */
export async function checkAgainstSdk(): Promise<void> {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const now = new Date('2026-12-02T15:50:00Z');
  const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
  const body = Buffer.from('{"a":1}\n'.repeat(100));
  const headers = { 'content-length': body.length, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' };
  const path = '/bench/x/2026/12/02/15/2026-12-02-15-50-00-ab.gz';
  const ours = signV4('PUT', '127.0.0.1:4568', path, headers, body, 'us-east-1', credentials, now);
  const signer = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Sha256 as unknown as ConstructorParameters<typeof SignatureV4>[0]["sha256"], uriEscapePath: false, applyChecksum: true });
  const request = {
    method: 'PUT',
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: 4568,
    path,
    query: {},
    headers: { host: '127.0.0.1:4568', 'content-length': String(body.length), 'content-type': headers['content-type'], 'content-encoding': headers['content-encoding'], 'x-amz-content-sha256': ours['x-amz-content-sha256'] as string },
    body,
  };
  const theirs = (await signer.sign(request as Parameters<typeof signer.sign>[0], { signingDate: now })) as { headers: Record<string, string> };
  if (theirs.headers.authorization !== ours.authorization) throw new Error(`signV4 disagrees with the SDK's signer:\n  ours:   ${ours.authorization}\n  theirs: ${theirs.headers.authorization}`);
}
