import { GetBucketLocationCommand, type S3Client } from '@aws-sdk/client-s3';
import { messageOf, s3ErrorCode } from '../errors.js';
import { classify, type RetryPolicy } from '../retry.js';
import { Transport } from '../transport.js';

/**
 * The start-up check: GetBucketLocation on the bucket, so that a missing
 * bucket, refused credentials or an endpoint that does not answer stop the
 * run at once rather than at the first upload. It answers within seconds,
 * whatever the sink's own retry policy (10 attempts of 2 minutes would keep
 * a stalled endpoint silent for 20 minutes): attempts of at most
 * `ATTEMPT_MS`, `POLICY.attempts` of them, all within `DEADLINE_MS`.
 */

const POLICY: RetryPolicy = Object.freeze({ attempts: 3, baseMs: 250, capMs: 1_000 });
const ATTEMPT_MS = 4_000;
const DEADLINE_MS = 10_000;
/** Where the SDK looks for credentials, for a message about them. */
const CHAIN = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws/credentials or ~/.aws/config, SSO included), or run where a container or instance role applies';
/** S3's codes for credentials it does not accept. */
const REFUSED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired']);

export type CheckResult = { fatal: boolean; problem: string } | null;

/**
 * `null` when the bucket looks usable; else what is wrong, and whether the
 * run should stop. `where` names the endpoint for messages (a URL, or the
 * AWS region).
 */
export async function checkBucket(client: S3Client, bucket: string, where: string, expectedOwner?: string): Promise<CheckResult> {
  let attempts = 1;
  const transport = new Transport(client, POLICY, ATTEMPT_MS, () => (attempts += 1));
  const deadline = AbortSignal.timeout(DEADLINE_MS);
  try {
    await transport.send(new GetBucketLocationCommand({ Bucket: bucket, ExpectedBucketOwner: expectedOwner }), deadline);
    return null;
  } catch (err) {
    const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
    if (deadline.aborted) {
      return { fatal: true, problem: `cannot reach ${where} to check bucket ${bucket}: no answer within ${DEADLINE_MS / 1000} s (${tries} of GetBucketLocation)` };
    }
    const code = s3ErrorCode(err);
    if (code === 'CredentialsProviderError') return { fatal: true, problem: `no AWS credentials found (${messageOf(err)}): ${CHAIN}` };
    if (REFUSED.has(code)) return { fatal: true, problem: `S3 refused the credentials for bucket ${bucket}: ${code}: ${messageOf(err)} (they come from the AWS SDK's default chain: ${CHAIN})` };
    // A policy without s3:GetBucketLocation should not stop delivery: say so and go on.
    if (code === 'AccessDenied') return { fatal: false, problem: `cannot check bucket ${bucket} (AccessDenied on GetBucketLocation); going on` };
    // No HTTP answer at all, and a failure that could pass (refused, reset, timed out): the endpoint is the problem.
    const answered = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== undefined;
    const verdict = classify(err);
    if (!answered && verdict.retry) return { fatal: true, problem: `cannot reach ${where} to check bucket ${bucket}: ${verdict.code}: ${messageOf(err)} (${tries})` };
    return { fatal: true, problem: `cannot write to bucket ${bucket}: ${code}: ${messageOf(err)}` };
  }
}
