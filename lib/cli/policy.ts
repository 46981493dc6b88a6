/**
 * The minimal bucket policy for a principal that runs s3-sink: exactly the
 * actions the sink uses. Object actions on `arn:aws:s3:::NAME/*`, bucket
 * actions on `arn:aws:s3:::NAME`.
 *
 * - s3:PutObject: PutObject, and every step of a multipart upload
 *   (CreateMultipartUpload, UploadPart, CompleteMultipartUpload)
 * - s3:PutObjectAcl: objects written with `--acl` (e.g. bucket-owner-full-control)
 * - s3:AbortMultipartUpload: uploads given up on are aborted, never left behind
 * - s3:ListBucketMultipartUploads: the orphan sweep at start
 * - s3:GetBucketLocation: the check at start that the bucket is there and reachable
 */
export const OBJECT_ACTIONS = ['s3:PutObject', 's3:PutObjectAcl', 's3:AbortMultipartUpload'] as const;
export const BUCKET_ACTIONS = ['s3:ListBucketMultipartUploads', 's3:GetBucketLocation'] as const;

export function bucketPolicy(bucket: string, principal: string): object {
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'S3SinkWriteObjects', Effect: 'Allow', Principal: { AWS: principal }, Action: [...OBJECT_ACTIONS], Resource: `arn:aws:s3:::${bucket}/*` },
      { Sid: 'S3SinkBucket', Effect: 'Allow', Principal: { AWS: principal }, Action: [...BUCKET_ACTIONS], Resource: `arn:aws:s3:::${bucket}` },
    ],
  };
}
