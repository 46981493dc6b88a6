import test from 'ava';
import { backoffDelay, classify, DEFAULT_RETRY } from '../lib/retry.js';

const s3Error = (name: string, status: number) => Object.assign(new Error(`${name} from S3`), { name, $metadata: { httpStatusCode: status } });
const netError = (code: string) => Object.assign(new Error(`connect ${code}`), { code });

test('backoff: full jitter under an exponential ceiling, capped', (t) => {
  const policy = { attempts: 10, baseMs: 100, capMs: 1000 };
  t.is(backoffDelay(policy, 1, () => 0.999), 99);
  t.is(backoffDelay(policy, 2, () => 0.999), 199);
  t.is(backoffDelay(policy, 4, () => 0.999), 799);
  t.is(backoffDelay(policy, 5, () => 0.999), 999, 'capped');
  t.is(backoffDelay(policy, 50, () => 0.999), 999, 'no overflow for late attempts');
  t.is(backoffDelay(policy, 3, () => 0), 0);
  t.is(backoffDelay(policy, 3, () => 0.5), 200);
  t.deepEqual(DEFAULT_RETRY, { attempts: 10, baseMs: 200, capMs: 20_000 });
});

test('failures that can pass are retried', (t) => {
  for (const err of [
    s3Error('SlowDown', 503),
    s3Error('ServiceUnavailable', 503),
    s3Error('InternalError', 500),
    s3Error('BadGateway', 502),
    s3Error('TooManyRequestsException', 429),
    s3Error('RequestTimeout', 400),
    s3Error('ExpiredToken', 400),
    Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    netError('EPIPE'),
    netError('ETIMEDOUT'),
    Object.assign(new Error('no answer'), { name: 'RequestTimeout' }),
    Object.assign(new Error('wrapped'), { cause: netError('ECONNRESET') }),
  ]) {
    t.true(classify(err).retry, `${err.name} ${(err as { code?: string }).code ?? ''}`);
  }
  t.is(classify(s3Error('SlowDown', 503)).code, 'SlowDown');
  t.is(classify(netError('ECONNRESET')).code, 'ECONNRESET');
});

test('failures that fail the same way every time are not', (t) => {
  for (const err of [
    s3Error('AccessDenied', 403),
    s3Error('InvalidAccessKeyId', 403),
    s3Error('SignatureDoesNotMatch', 403),
    s3Error('NoSuchBucket', 404),
    s3Error('InvalidBucketName', 400),
    s3Error('NotImplemented', 501),
    s3Error('MethodNotAllowed', 405),
    Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }),
  ]) {
    t.false(classify(err).retry, err.name);
  }
  t.is(classify(s3Error('NoSuchBucket', 404)).code, 'NoSuchBucket');
});
