import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, type ListMultipartUploadsCommandOutput } from '@aws-sdk/client-s3';
import type { SinkContext, SweepResult } from './context.js';
import { messageOf } from './errors.js';
import { parseKey } from './key.js';
import { classify } from './retry.js';

/** A store without the call: s3rver answers 405 to AbortMultipartUpload and 501 to ListMultipartUploads. */
function unsupported(code: string): boolean {
  return code === 'MethodNotAllowed' || code === 'NotImplemented';
}

/**
 * AbortMultipartUpload, which must never fail what it cleans up after: a
 * store without it is said once; another failure is said each time (the
 * orphan sweep can remove the upload later). `true` when it was aborted.
 */
export async function abortMultipartUpload(ctx: SinkContext, bucket: string, key: string, uploadId: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await ctx.transport.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, ExpectedBucketOwner: ctx.options.objectParams.ExpectedBucketOwner }), signal);
    return true;
  } catch (err) {
    const { code } = classify(err);
    // Gone already (completed, or aborted before): nothing left to bill.
    if (code === 'NoSuchUpload') return true;
    if (unsupported(code)) {
      ctx.warn('S3SINK_NO_ABORT', `the store does not support AbortMultipartUpload (${code}): multipart uploads given up on stay behind until the store removes them`, true);
    } else {
      ctx.warn('S3SINK_ABORT_FAILED', `AbortMultipartUpload of s3://${bucket}/${key} failed (${code}: ${messageOf(err)}); sweepOrphans can remove it later`);
    }
    return false;
  }
}

/**
 * The orphan sweep (`sweepOrphans` option): multipart uploads in the default
 * bucket, under the sink's prefix (up to its first placeholder) and its
 * dead-letter prefix, older than the threshold and with keys in the sink's
 * format, are aborted: a crash left them, and they bill until removed. Keys
 * of other writers are never touched. A store without ListMultipartUploads
 * is said once and the sweep is skipped. Resolves with what it did, or `null`.
 */
export async function sweepOrphans(ctx: SinkContext, signal?: AbortSignal): Promise<SweepResult | null> {
  const { bucket, sweepOrphans: age, prefixRoot, deadLetterPrefix, clock } = ctx.options;
  if (age === false || bucket === undefined) return null;
  const roots = [...new Set([prefixRoot, deadLetterPrefix])].map((p) => (p === '' ? '' : `${p}/`));
  const prefixes = roots.filter((p) => !roots.some((other) => other !== p && p.startsWith(other)));
  const cutoff = clock.now() - age;
  const result: SweepResult = { bucket, prefixes, found: 0, aborted: 0 };
  try {
    for (const prefix of prefixes) {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        const page = await ctx.transport.send<ListMultipartUploadsCommandOutput>(
          new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, ExpectedBucketOwner: ctx.options.objectParams.ExpectedBucketOwner }),
          signal,
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated.getTime() >= cutoff || parseKey(upload.Key) === null) continue;
          result.found += 1;
          if (await abortMultipartUpload(ctx, bucket, upload.Key, upload.UploadId, signal)) result.aborted += 1;
        }
        if (!page.IsTruncated) break;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    }
  } catch (err) {
    if (signal?.aborted) return null;
    const { code } = classify(err);
    if (unsupported(code)) ctx.warn('S3SINK_NO_LIST_UPLOADS', `the store does not support ListMultipartUploads (${code}): the orphan sweep is skipped`, true);
    else ctx.warn('S3SINK_SWEEP_FAILED', `the orphan sweep of s3://${bucket} failed: ${code}: ${messageOf(err)}`);
    return null;
  }
  ctx.counters.orphansAborted += result.aborted;
  ctx.report('swept', result);
  return result;
}
