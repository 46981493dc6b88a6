import type { ObjectCannedACL, PutObjectCommandInput } from '@aws-sdk/client-s3';

/**
 * What every object the sink writes carries besides its bytes: the headers
 * of PutObject and CreateMultipartUpload (the upload stage passes the same
 * params to both, and ExpectedBucketOwner on to UploadPart and
 * CompleteMultipartUpload too). Pure: built once, when options are resolved.
 */

/** Server-side encryption with S3's keys, with a KMS key, or with two layers of KMS encryption. */
export const SSE_MODES = ['AES256', 'aws:kms', 'aws:kms:dsse'] as const;
export type SseMode = (typeof SSE_MODES)[number];

/** Storage classes an object can be written in (the archive classes included; the restore is the reader's business). */
export const STORAGE_CLASSES = [
  'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'GLACIER_IR',
  'DEEP_ARCHIVE', 'OUTPOSTS', 'EXPRESS_ONEZONE', 'SNOW',
] as const;
export type ObjectStorageClass = (typeof STORAGE_CLASSES)[number];

/** The object settings, validated (see `resolveOptions`). */
export interface ObjectSettings {
  acl: ObjectCannedACL | undefined;
  sse: SseMode | undefined;
  sseKmsKeyId: string | undefined;
  sseBucketKey: boolean | undefined;
  storageClass: ObjectStorageClass | undefined;
  tags: Readonly<Record<string, string>> | undefined;
  contentType: string;
  contentEncoding: string | undefined;
  expectedBucketOwner: string | undefined;
}

export type ObjectParams = Pick<
  PutObjectCommandInput,
  'ContentType' | 'ContentEncoding' | 'ACL' | 'ServerSideEncryption' | 'SSEKMSKeyId' | 'BucketKeyEnabled' | 'StorageClass' | 'Tagging' | 'ExpectedBucketOwner'
>;

/** The params for `settings`, with only the fields that are set (an unset header is not sent). */
export function objectParams(settings: ObjectSettings): Readonly<ObjectParams> {
  const params: ObjectParams = { ContentType: settings.contentType };
  if (settings.contentEncoding !== undefined) params.ContentEncoding = settings.contentEncoding;
  if (settings.acl !== undefined) params.ACL = settings.acl;
  if (settings.sse !== undefined) params.ServerSideEncryption = settings.sse;
  if (settings.sseKmsKeyId !== undefined) params.SSEKMSKeyId = settings.sseKmsKeyId;
  if (settings.sseBucketKey !== undefined) params.BucketKeyEnabled = settings.sseBucketKey;
  if (settings.storageClass !== undefined) params.StorageClass = settings.storageClass;
  if (settings.tags !== undefined && Object.keys(settings.tags).length > 0) params.Tagging = taggingHeader(settings.tags);
  if (settings.expectedBucketOwner !== undefined) params.ExpectedBucketOwner = settings.expectedBucketOwner;
  return Object.freeze(params);
}

/**
 * Tags as the `x-amz-tagging` header wants them: URL query form, each key
 * and value percent-encoded (a space as `%20`, not `+`). Sent with the
 * object itself rather than by a PutObjectTagging after it (as
 * `@aws-sdk/lib-storage`'s `tags` option does): the object is never in S3 untagged, where a lifecycle or
 * access rule keyed on a tag would miss it, and there is no second request
 * to fail after the object is complete.
 */
export function taggingHeader(tags: Readonly<Record<string, string>>): string {
  return Object.entries(tags)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join('&');
}

/** S3's limits on object tags. */
export const MAX_TAGS = 10;
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** What an S3 object tag `[key, value]` lacks, as an "expected" clause, or `null` when it is one. */
export function tagProblem(key: string, value: unknown): string | null {
  if (typeof value !== 'string') return 'a string value';
  if (key.length < 1 || [...key].length > 128) return 'a key of 1 to 128 characters';
  if ([...value].length > 256) return 'a value of at most 256 characters';
  if (key.toLowerCase().startsWith('aws:')) return 'a key not starting with aws: (kept for AWS)';
  if (!TAG_TEXT.test(key) || !TAG_TEXT.test(value)) return 'letters, digits, spaces and + - = . _ : / @ only';
  return null;
}
