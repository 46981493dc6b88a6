import { bucketNameProblem } from '../options.js';

/**
 * The minimal bucket policy for a principal that runs s3-sink: exactly the
 * actions the sink uses. Object actions on `arn:PARTITION:s3:::NAME/*`,
 * bucket actions on `arn:PARTITION:s3:::NAME`.
 *
 * - s3:PutObject: PutObject, and every step of a multipart upload
 *   (CreateMultipartUpload, UploadPart, CompleteMultipartUpload)
 * - s3:PutObjectAcl: objects written with `--acl` (e.g. bucket-owner-full-control)
 * - s3:AbortMultipartUpload: uploads given up on are aborted, never left behind
 * - s3:ListBucketMultipartUploads: the orphan sweep at start
 * - s3:GetBucketLocation: the check at start that the bucket is there and reachable
 * - s3:PutObjectTagging, with `--tag`: tags sent with the object (x-amz-tagging) need it
 *
 * With a KMS key named (`--sse-kms-key-id`), the principal also needs
 * kms:GenerateDataKey (each object's data key) and kms:Decrypt (a multipart
 * upload decrypts that key for every part) on the key. A bucket policy
 * cannot grant KMS actions, so the output becomes two documents: the bucket
 * policy, and the statement to add to the key's policy.
 */
export const OBJECT_ACTIONS = ['s3:PutObject', 's3:PutObjectAcl', 's3:AbortMultipartUpload'] as const;
export const BUCKET_ACTIONS = ['s3:ListBucketMultipartUploads', 's3:GetBucketLocation'] as const;
export const TAGGING_ACTION = 's3:PutObjectTagging';
export const KMS_ACTIONS = ['kms:GenerateDataKey', 'kms:Decrypt'] as const;

/** AWS partitions, and the region names that belong to each but `aws`. */
const PARTITIONS: readonly (readonly [string, RegExp])[] = [
  ['aws-cn', /^cn-/],
  ['aws-us-gov', /^us-gov-/],
  ['aws-iso', /^us-iso-/],
  ['aws-iso-b', /^us-isob-/],
  ['aws-iso-e', /^eu-isoe-/],
  ['aws-iso-f', /^us-isof-/],
  ['aws', /^[a-z]{2}(-[a-z]+)+-\d+$/],
];
export const PARTITION_NAMES: readonly string[] = PARTITIONS.map(([name]) => name);

/** The partition of an AWS region (`cn-north-1` → `aws-cn`), or `null` for a name that is not a region. */
export function partitionOf(region: string): string | null {
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) return null;
  return PARTITIONS.find(([, pattern]) => pattern.test(region))?.[0] ?? null;
}

/**
 * An IAM principal a bucket policy can name: an account id, or the ARN of an
 * account root, user, role or assumed-role session. `*` (anyone, a public
 * bucket) and wildcards are not: the sink never needs them.
 */
const PRINCIPAL = /^arn:(aws(?:-[a-z]+)*):(?:iam::(\d{12}):(?:root|user\/[\w+=,.@/-]+|role\/[\w+=,.@/-]+)|sts::(\d{12}):assumed-role\/[\w+=,.@-]+\/[\w+=,.@-]+)$/;

/** Why `principal` cannot be the policy's principal, or `null` when it can. */
export function principalProblem(principal: string): string | null {
  if (principal.includes('*')) return `"${principal}" is a wildcard: it would let anyone write to the bucket; name the role or user that runs s3-sink`;
  if (/^\d{12}$/.test(principal)) return null;
  if (!PRINCIPAL.test(principal)) return `"${principal}" is not an IAM principal (an account id, or an ARN like arn:aws:iam::123456789012:role/shipper)`;
  return null;
}

export interface PolicyRequest {
  bucket: string;
  principal: string;
  /** `--partition`, else the one of `--region`, else the principal's, else `aws`. */
  partition?: string | undefined;
  region?: string | undefined;
  /** The KMS key the run names (`--sse-kms-key-id`): the key policy statement is added. */
  kmsKey?: string | undefined;
  /** The run writes tags (`--tag`): s3:PutObjectTagging is added. */
  tagged?: boolean;
}

/** The partition the policy's ARNs are in, or why the flags disagree. */
export function policyPartition(request: PolicyRequest): { partition: string } | { problem: string } {
  const ofPrincipal = /^arn:([^:]+):/.exec(request.principal)?.[1];
  let partition: string;
  if (request.partition !== undefined) {
    if (!PARTITION_NAMES.includes(request.partition)) return { problem: `--partition: "${request.partition}" is not an AWS partition (${PARTITION_NAMES.join(', ')})` };
    partition = request.partition;
    const ofRegion = request.region === undefined ? null : partitionOf(request.region);
    if (ofRegion !== null && ofRegion !== partition) return { problem: `--region ${request.region} is in partition ${ofRegion}, not ${partition}` };
  } else if (request.region !== undefined) {
    const ofRegion = partitionOf(request.region);
    if (ofRegion === null) return { problem: `--region: "${request.region}" is not an AWS region (like us-east-1, cn-north-1, us-gov-west-1)` };
    partition = ofRegion;
  } else {
    partition = ofPrincipal ?? 'aws';
  }
  if (ofPrincipal !== undefined && ofPrincipal !== partition) return { problem: `--principal ${request.principal} is in partition ${ofPrincipal}, the bucket's ARNs in ${partition}` };
  return { partition };
}

/** What is wrong with a policy request, or `null`: the bucket name, the principal, the partition. */
export function policyProblem(request: PolicyRequest): string | null {
  const bucket = bucketNameProblem(request.bucket);
  if (bucket !== null) return `--bucket: "${request.bucket}" is not an S3 bucket name (${bucket})`;
  const principal = principalProblem(request.principal);
  if (principal !== null) return `--principal: ${principal}`;
  const partition = policyPartition(request);
  return 'problem' in partition ? partition.problem : null;
}

export function bucketPolicy(request: PolicyRequest): object {
  const found = policyPartition(request);
  if ('problem' in found) throw new Error(found.problem);
  const arn = `arn:${found.partition}:s3:::${request.bucket}`;
  const principal = { AWS: request.principal };
  const objectActions: string[] = [...OBJECT_ACTIONS, ...(request.tagged ? [TAGGING_ACTION] : [])];
  const bucketPolicy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'S3SinkWriteObjects', Effect: 'Allow', Principal: principal, Action: objectActions, Resource: `${arn}/*` },
      { Sid: 'S3SinkBucket', Effect: 'Allow', Principal: principal, Action: [...BUCKET_ACTIONS], Resource: arn },
    ],
  };
  if (request.kmsKey === undefined) return bucketPolicy;
  return {
    BucketPolicy: bucketPolicy,
    // In a key policy, Resource "*" is the key itself; the condition keeps its use to S3 objects of this bucket
    // (the encryption context is the object's ARN, or the bucket's with an S3 Bucket Key).
    KeyPolicyStatement: {
      Sid: 'S3SinkUseKey',
      Effect: 'Allow',
      Principal: principal,
      Action: [...KMS_ACTIONS],
      Resource: '*',
      Condition: { StringLike: { 'kms:EncryptionContext:aws:s3:arn': [arn, `${arn}/*`] } },
    },
  };
}
