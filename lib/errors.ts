/**
 * Every error the sink raises is an `S3SinkError` with a stable `code`;
 * match on `code`, never on the message.
 */
export class S3SinkError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option failed validation. Names the option, the value and what was expected. */
export class OptionError extends S3SinkError {
  readonly option: string;

  constructor(option: string, value: unknown, expected: string) {
    super('ERR_S3SINK_OPTION', `option ${option}: got ${describe(value)}, expected ${expected}`);
    this.option = option;
  }
}

/**
 * The input that gave a batch no longer allows its object to be written (a
 * Kafka worker that lost the batch's partition to another worker, which reads
 * the records again): the upload is aborted, nothing is published, and the
 * batch is reported `'fenced'`. Never retried.
 */
export class FencedError extends S3SinkError {
  constructor(bucket: string, key: string) {
    super('ERR_S3SINK_FENCED', `s3://${bucket}/${key} is not written: the input that gave it no longer owns its records (another reader writes them)`);
  }
}

/** The clock (the `clock` option) gave a time that no key can be made of: not a number, or outside years 1970 to 9999. */
export class ClockError extends S3SinkError {
  constructor(value: unknown) {
    super('ERR_S3SINK_CLOCK', `clock.now() returned ${describe(value)}: expected milliseconds since the epoch, from 0 (1970) to the end of 9999 (keys hold a four-digit year)`);
  }
}

/** An object could not be written to S3. `cause` is the S3 client's error. */
export class UploadError extends S3SinkError {
  readonly bucket: string;
  readonly key: string;
  /** The S3 error code (`NoSuchBucket`, `SlowDown`, ...), or the error's name when S3 gave none. */
  readonly s3Code: string;

  constructor(bucket: string, key: string, cause: unknown) {
    const s3Code = s3ErrorCode(cause);
    const attempts = (cause as { attempts?: unknown } | null)?.attempts;
    const after = typeof attempts === 'number' && attempts > 1 ? ` after ${attempts} attempts` : '';
    super('ERR_S3SINK_UPLOAD', `upload of s3://${bucket}/${key} failed${after}: ${s3Code}: ${messageOf(cause)}`, { cause });
    this.bucket = bucket;
    this.key = key;
    this.s3Code = s3Code;
  }
}

/** The S3 error code of an SDK error (`Code` or `name`), or `Error`. */
export function s3ErrorCode(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { Code?: unknown; code?: unknown; name?: unknown };
    if (typeof e.Code === 'string' && e.Code) return e.Code;
    if (typeof e.name === 'string' && e.name && e.name !== 'Error') return e.name;
    if (typeof e.code === 'string' && e.code) return e.code;
  }
  return 'Error';
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A short, printable rendering of a bad value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return `an object`;
}
