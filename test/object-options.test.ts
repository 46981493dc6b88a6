import test from 'ava';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { s3Sink, type SinkOptions } from '../lib/index.js';
import { runCli } from './helpers/cli.js';
import { fixedClock } from './helpers/clock.js';
import { noisyLine, prng } from './helpers/data.js';
import type { Logged } from './helpers/proxy.js';
import { useLocalS3 } from './helpers/s3.js';

const env = useLocalS3(test, ['bucket'], {});

const MiB = 1024 * 1024;

/** The object headers the options put on a request. */
function objectHeaders(entry: Logged): Record<string, string | undefined> {
  const names = [
    'content-type', 'content-encoding', 'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id',
    'x-amz-server-side-encryption-bucket-key-enabled', 'x-amz-storage-class', 'x-amz-tagging', 'x-amz-expected-bucket-owner', 'x-amz-acl',
  ];
  return Object.fromEntries(names.map((name) => [name, entry.headers[name] as string | undefined]).filter(([, v]) => v !== undefined));
}

function requestsUnder(prefix: string): Logged[] {
  return env.proxy.log.filter((l) => l.url.includes(`/bucket/${prefix}`));
}

async function sendThrough(options: SinkOptions, lines: string[]): Promise<void> {
  const sink = s3Sink({ clock: fixedClock(), bucket: 'bucket', input: 'lines', s3: { ...env.s3.s3Config, endpoint: env.proxy.endpoint }, ...options });
  await pipeline(Readable.from([Buffer.from(lines.map((l) => `${l}\n`).join(''))]), sink);
}

test('SSE-KMS with a key and a bucket key, storage class, tags, content headers and bucket owner go on PutObject and CreateMultipartUpload; the objects read back', async (t) => {
  const options: SinkOptions = {
    sseKmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    sseBucketKey: true,
    storageClass: 'STANDARD_IA',
    tags: { team: 'logs', 'cost center': 'a/b c' },
    contentType: 'application/x-ndjson',
    contentEncoding: 'gzip',
    expectedBucketOwner: '123456789012',
    partSize: 5 * MiB,
  };
  const expected = {
    'content-type': 'application/x-ndjson',
    'content-encoding': 'gzip',
    'x-amz-server-side-encryption': 'aws:kms',
    'x-amz-server-side-encryption-aws-kms-key-id': 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    'x-amz-server-side-encryption-bucket-key-enabled': 'true',
    'x-amz-storage-class': 'STANDARD_IA',
    'x-amz-tagging': 'team=logs&cost%20center=a%2Fb%20c',
    'x-amz-expected-bucket-owner': '123456789012',
  };
  // A small batch (one PutObject) and one of incompressible lines over a part (a multipart upload).
  await sendThrough({ ...options, prefix: 'kms-small/' }, ['{"a":1}', '{"a":2}']);
  const random = prng(7);
  const big = Array.from({ length: 7 * 1024 }, () => noisyLine(random, 1023));
  await sendThrough({ ...options, prefix: 'kms-big/' }, big);

  const put = requestsUnder('kms-small/').filter((l) => l.operation === 'PutObject');
  t.is(put.length, 1);
  t.deepEqual(objectHeaders(put[0]!), expected);
  const create = requestsUnder('kms-big/').filter((l) => l.operation === 'CreateMultipartUpload');
  t.is(create.length, 1);
  t.deepEqual(objectHeaders(create[0]!), expected);
  const parts = requestsUnder('kms-big/').filter((l) => l.operation === 'UploadPart' || l.operation === 'CompleteMultipartUpload');
  t.true(parts.length >= 3);
  for (const part of parts) t.is(part.headers['x-amz-expected-bucket-owner'], '123456789012', `${part.operation} carries the bucket owner`);

  for (const [prefix, lines] of [['kms-small/', ['{"a":1}', '{"a":2}']], ['kms-big/', big]] as const) {
    const [key] = await env.s3.keys('bucket', prefix);
    t.deepEqual(await env.s3.lines('bucket', key!), lines);
    const head = await env.s3.client.send(new HeadObjectCommand({ Bucket: 'bucket', Key: key }));
    t.is(head.ContentType, 'application/x-ndjson');
    t.is(head.ContentEncoding, 'gzip');
    t.is(head.StorageClass, 'STANDARD_IA');
  }
});

test('without object options only Content-Type: application/gzip is sent; AES256 sends no KMS headers', async (t) => {
  await sendThrough({ prefix: 'plain/' }, ['x']);
  const [plain] = requestsUnder('plain/').filter((l) => l.operation === 'PutObject');
  t.deepEqual(objectHeaders(plain!), { 'content-type': 'application/gzip' });
  await sendThrough({ prefix: 'aes/', sse: 'AES256', acl: 'bucket-owner-full-control' }, ['x']);
  const [aes] = requestsUnder('aes/').filter((l) => l.operation === 'PutObject');
  t.deepEqual(objectHeaders(aes!), { 'content-type': 'application/gzip', 'x-amz-server-side-encryption': 'AES256', 'x-amz-acl': 'bucket-owner-full-control' });
});

test('the CLI flags set the same headers; their mistakes are usage errors naming the flag', async (t) => {
  const { code, stderr } = await runCli(
    ['--bucket', 'bucket', '--prefix', 'cli/', '--endpoint', env.proxy.endpoint, '--quiet', '--sse', 'aws:kms', '--sse-kms-key-id', 'alias/logs', '--sse-bucket-key',
      '--storage-class', 'intelligent_tiering', '--tag', 'team=logs', '--tag', 'env=a=b', '--content-type', 'application/x-ndjson', '--content-encoding', 'gzip', '--expected-bucket-owner', '123456789012'],
    '{"a":1}\n',
  );
  t.is(code, 0, stderr);
  const [put] = requestsUnder('cli/').filter((l) => l.operation === 'PutObject');
  t.deepEqual(objectHeaders(put!), {
    'content-type': 'application/x-ndjson',
    'content-encoding': 'gzip',
    'x-amz-server-side-encryption': 'aws:kms',
    'x-amz-server-side-encryption-aws-kms-key-id': 'alias/logs',
    'x-amz-server-side-encryption-bucket-key-enabled': 'true',
    'x-amz-storage-class': 'INTELLIGENT_TIERING',
    'x-amz-tagging': 'team=logs&env=a%3Db',
    'x-amz-expected-bucket-owner': '123456789012',
  });
  for (const [args, message] of [
    [['--tag', 'team'], '--tag: "team" is not KEY=VALUE'],
    [['--tag', 'a=1', '--tag', 'a=2'], '--tag: the key "a" is given twice'],
    [['--tag', 'aws:x=1'], '--tag: got "aws:x=1", expected a tag: a key not starting with aws: (kept for AWS)'],
    [['--sse', 'AES256', '--sse-bucket-key'], '--sse-bucket-key: got true, expected sse \'aws:kms\' (S3 Bucket Keys are for SSE-KMS; sse is \'AES256\')'],
    [['--sse', 'AES256', '--sse-kms-key-id', 'alias/x'], '--sse-kms-key-id: got "alias/x", expected no KMS key with sse \'AES256\' (a KMS key goes with sse \'aws:kms\' or \'aws:kms:dsse\')'],
    [['--sse', 'aes'], '--sse: got "aes", expected one of \'AES256\', \'aws:kms\', \'aws:kms:dsse\''],
    [['--storage-class', 'cold'], /^s3-sink: --storage-class: got "COLD", expected a storage class: STANDARD, /],
    [['--expected-bucket-owner', 'me'], '--expected-bucket-owner: got "me", expected a 12-digit AWS account id'],
  ] as const) {
    const refused = await runCli(['--bucket', 'bucket', '--endpoint', env.proxy.endpoint, ...args]);
    t.is(refused.code, 2, args.join(' '));
    if (typeof message === 'string') t.is(refused.stderr, `s3-sink: ${message}\n`);
    else t.regex(refused.stderr, message);
  }
});

test('policy: --tag adds s3:PutObjectTagging; --sse-kms-key-id adds the key policy statement with kms:GenerateDataKey and kms:Decrypt', async (t) => {
  const ROLE = 'arn:aws:iam::123456789012:role/shipper';
  const tagged = await runCli(['policy', '--bucket', 'logs', '--principal', ROLE, '--tag', 'team=logs']);
  t.is(tagged.code, 0, tagged.stderr);
  const bucketPolicy = JSON.parse(tagged.stdout) as { Statement: { Action: string[] }[] };
  t.deepEqual(bucketPolicy.Statement[0]!.Action, ['s3:PutObject', 's3:PutObjectAcl', 's3:AbortMultipartUpload', 's3:PutObjectTagging']);
  const kms = await runCli(['policy', '--bucket', 'logs', '--principal', ROLE, '--sse-kms-key-id', 'arn:aws:kms:us-east-1:123456789012:key/k']);
  t.is(kms.code, 0, kms.stderr);
  const both = JSON.parse(kms.stdout) as { BucketPolicy: { Statement: { Action: string[] }[] }; KeyPolicyStatement: unknown };
  t.deepEqual(both.BucketPolicy.Statement[0]!.Action, ['s3:PutObject', 's3:PutObjectAcl', 's3:AbortMultipartUpload']);
  t.deepEqual(both.KeyPolicyStatement, {
    Sid: 'S3SinkUseKey',
    Effect: 'Allow',
    Principal: { AWS: ROLE },
    Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
    Resource: '*',
    Condition: { StringLike: { 'kms:EncryptionContext:aws:s3:arn': ['arn:aws:s3:::logs', 'arn:aws:s3:::logs/*'] } },
  });
});
