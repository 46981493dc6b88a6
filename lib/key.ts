import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';

/**
 * Object keys: `[PREFIX]/YYYY/MM/DD/HH/YYYY-MM-DD-HH-MM-SS-IDENTIFIER.gz`, UTC,
 * folders and file name from the same instant (when the batch opened).
 */

const KEY_TIME_FORMAT = "yyyy'/'MM'/'dd'/'HH'/'yyyy'-'MM'-'dd'-'HH'-'mm'-'ss";

/** S3 keys are at most 1024 bytes; the date part and identifier take 103 of them. */
export const MAX_PREFIX_BYTES = 1024 - 103 - 1;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Whether `text` holds a control character (never allowed in a prefix). */
export function hasControlCharacter(text: string): boolean {
  return CONTROL.test(text);
}

/**
 * A prefix as given, normalised, or what keeps it from being one: a control
 * character, or more than MAX_PREFIX_BYTES once normalised. Options and
 * per-record prefixes are checked alike; callers word the problem.
 */
export function checkPrefix(raw: string): { prefix: string } | { problem: 'control' | 'length' } {
  if (CONTROL.test(raw)) return { problem: 'control' };
  const prefix = normalizePrefix(raw);
  return Buffer.byteLength(prefix) > MAX_PREFIX_BYTES ? { problem: 'length' } : { prefix };
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

/** The key of an object whose batch opened at `openedAt` (ms since epoch), under a normalised prefix. */
export function formatKey(normalizedPrefix: string, openedAt: number, identifier: string): string {
  const time = DateTime.fromMillis(openedAt, { zone: 'utc' }).toFormat(KEY_TIME_FORMAT);
  const name = `${time}-${identifier}.gz`;
  return normalizedPrefix === '' ? name : `${normalizedPrefix}/${name}`;
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
