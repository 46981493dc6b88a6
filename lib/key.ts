import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { ClockError } from './errors.js';

/**
 * Object keys: `[PREFIX]/YYYY/MM/DD/HH/YYYY-MM-DD-HH-MM-SS-IDENTIFIER.gz`, UTC,
 * folders and file name from the same instant (when the batch opened).
 */

const KEY_TIME_FORMAT = "yyyy'/'MM'/'dd'/'HH'/'yyyy'-'MM'-'dd'-'HH'-'mm'-'ss";

/** The first instant whose year has five digits: keys hold a four-digit year. */
export const MAX_KEY_TIME = Date.UTC(10000, 0, 1);

/** S3 keys are at most 1024 bytes; the date part and identifier take 103 of them. */
export const MAX_PREFIX_BYTES = 1024 - 103 - 1;

/**
 * What no prefix may hold, from any source (the `prefix` and
 * `deadLetterPrefix` options, a record's `prefix`, a filled template):
 * a control character (it breaks keys in logs, listings and shells), a lone
 * UTF-16 surrogate (it has no UTF-8 form: the SDK's `encodeURIComponent`
 * throws `URIError: URI malformed` and the upload fails), or a `.` or `..`
 * segment (tools that map keys to paths, `aws s3 sync` among them, would
 * resolve it: `../../etc/` climbs out of the bucket's folder).
 */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|(?:^|\/)\.{1,2}(?=\/|$)/;

/**
 * Why `raw` cannot be a prefix, in words that name what is wrong
 * (`contains a control character (U+000A)`, `has a ".." segment`), or
 * `null` when it can. The one rule for prefixes: every source of one is
 * checked with it. Cheap enough to run per event (one regular expression).
 */
export function prefixProblem(raw: string): string | null {
  const found = FORBIDDEN.exec(raw);
  if (found !== null) {
    const text = found[0];
    if (text.endsWith('.')) return `has a ${JSON.stringify(text.replace('/', ''))} segment`;
    const unit = text.charCodeAt(0);
    const code = `U+${unit.toString(16).toUpperCase().padStart(4, '0')}`;
    return unit >= 0xd800 && unit <= 0xdfff ? `contains a lone surrogate (${code})` : `contains a control character (${code})`;
  }
  // Normalising only removes slashes: the raw length bounds the normalised one.
  if (raw.length * 3 > MAX_PREFIX_BYTES && Buffer.byteLength(normalizePrefix(raw)) > MAX_PREFIX_BYTES) return `is longer than ${MAX_PREFIX_BYTES} bytes`;
  return null;
}

/** What `prefixProblem` refuses, as the clause an option's "expected" reads. */
export const PREFIX_RULE = `a prefix without control characters, lone surrogates or "." or ".." segments, of at most ${MAX_PREFIX_BYTES} bytes`;

/** A prefix as given, normalised, or why it cannot be one (see `prefixProblem`). */
export function checkPrefix(raw: string): { prefix: string } | { problem: string } {
  const problem = prefixProblem(raw);
  return problem === null ? { prefix: normalizePrefix(raw) } : { problem };
}

/** 64 lowercase hex characters from 32 random bytes: no two objects, processes or restarts collide. */
export function newIdentifier(): string {
  return randomBytes(32).toString('hex');
}

/**
 * `test/`, `test` and `/test//` all become `test`; `''` and `/` become `''`.
 * The key then joins prefix and date path with exactly one `/`.
 */
export function normalizePrefix(prefix: string): string {
  if (prefix === '') return '';
  return prefix
    .split('/')
    .filter((segment) => segment !== '')
    .join('/');
}

/** Whether `time` (ms since epoch) is an instant a key can name: from 1970 to the end of 9999. */
export function isKeyTime(time: unknown): time is number {
  return typeof time === 'number' && time >= 0 && time < MAX_KEY_TIME;
}

/**
 * The key of an object whose batch opened at `openedAt` (ms since epoch), under a normalised prefix.
 * Throws `ClockError` for a time with no key (NaN, before 1970, after 9999): luxon would format it as `Invalid DateTime`.
 */
export function formatKey(normalizedPrefix: string, openedAt: number, identifier: string): string {
  if (!isKeyTime(openedAt)) throw new ClockError(openedAt);
  const time = DateTime.fromMillis(openedAt, { zone: 'utc' }).toFormat(KEY_TIME_FORMAT);
  const name = `${time}-${identifier}.gz`;
  return flat(normalizedPrefix === '' ? name : `${normalizedPrefix}/${name}`);
}

/**
 * `s` as one string in one piece. Built by concatenation (luxon's format
 * too), a key is a tree of about 20 pieces in V8: about 700 bytes of heap
 * instead of 150, and every open batch keeps its key (7 MiB at 10 000
 * destinations, which V8 then lets grow about threefold before it collects).
 */
function flat(s: string): string {
  // UTF-16 there and back: every string comes back the same, lone surrogates included (UTF-8 would replace them).
  return Buffer.from(s, 'utf16le').toString('utf16le');
}

/** The inverse of `formatKey`, for tests and tools: `null` if `key` is not in the object format. */
export function parseKey(key: string): { prefix: string; time: number; identifier: string } | null {
  const m = /^(?:(.*)\/)?(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-([0-9a-f]{64})\.gz$/.exec(key);
  if (!m) return null;
  const [, prefix = '', y, mo, d, h, y2, mo2, d2, h2, mi, s, identifier] = m;
  if (y !== y2 || mo !== mo2 || d !== d2 || h !== h2) return null;
  const time = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return { prefix, time, identifier: identifier as string };
}
