import { isKeyTime } from './key.js';

/**
 * Event time: with the `time` option, batches and keys follow each event's
 * own time instead of its arrival. This module says what a time value is.
 *
 * A time value is *usable* when it names an instant a key can hold (from
 * 1970 to the end of 9999, `isKeyTime`) and is one of:
 * - a number: epoch seconds below 10^11 (up to the year 5138), epoch
 *   milliseconds from 10^11 on (from March 1973). Fractions are kept to the
 *   millisecond (seconds rounded, milliseconds floored). Nothing earlier
 *   than 1973 is written in milliseconds, and nothing later than 5138 in
 *   seconds, so the magnitude tells them apart;
 * - an ISO 8601 string in the extended format (RFC 3339 and its usual
 *   relaxations): `2026-01-02T03:04:05.678Z`, `2026-01-02T04:04:05+01:00`,
 *   `+0100` or `+01`, `t`/`z` in lower case, a space for the `T`, a comma for
 *   the `.`, any number of fraction digits (Vector writes nine), minutes
 *   without seconds, a date alone (its midnight). Without an offset the time
 *   is UTC (as the keys are; never the zone of the host);
 * - a `Date` (records whose payload is an object).
 * Anything else (a numeric string, `null`, `true`, a date before 1970) has no
 * usable time.
 */

/** What the `time` option's function gives for an event's payload: a time value, or nothing. */
export type TimeOf = (payload: unknown) => number | string | Date | null | undefined;

/**
 * The `time` option: where each event's own time is (a field of its JSON, or
 * a function of its payload), and how long a batch waits for late events.
 */
export type TimeOption = TimeOf | { field: string; get?: never; lateMs?: number } | { get: TimeOf; field?: never; lateMs?: number };

/** The `time` option, checked, with its default. */
export interface ResolvedTime {
  /** The field path (`['event', 'time']`), or `null` with `get`. */
  readonly field: readonly string[] | null;
  readonly get: TimeOf | null;
  /** How long past its window's end (on the `clock`) a batch waits for late events. */
  readonly lateMs: number;
}

/** Numbers below this are epoch seconds; from it on, epoch milliseconds. */
export const SECONDS_BELOW = 1e11;

/** Milliseconds since the epoch for a time value, or `NaN` when it has no usable time (see above). */
export function timeValue(value: unknown): number {
  let ms: number;
  if (typeof value === 'number') ms = value < SECONDS_BELOW ? Math.round(value * 1000) : Math.floor(value);
  else if (typeof value === 'string') ms = isoTime(value);
  else if (value instanceof Date) ms = value.getTime();
  else return NaN;
  return isKeyTime(ms) ? ms : NaN;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * An ISO 8601 date or date-time in the extended format (above), as
 * milliseconds since the epoch; `NaN` for anything else. Reads char codes:
 * no regular expression, no allocation per call.
 */
export function isoTime(s: string): number {
  const n = s.length;
  if (n < 10 || s.charCodeAt(4) !== 0x2d || s.charCodeAt(7) !== 0x2d) return NaN;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  // Years below 100 would be read by Date.UTC as 19xx; they are long before 1970 anyway.
  if (year < 100 || month < 1 || month > 12 || day < 1) return NaN;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > (DAYS[month - 1] as number) + (leap ? 1 : 0)) return NaN;
  let ms = Date.UTC(year, month - 1, day);
  if (n === 10) return ms;
  const t = s.charCodeAt(10);
  if ((t !== 0x54 && t !== 0x74 && t !== 0x20) || s.charCodeAt(13) !== 0x3a) return NaN;
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return NaN;
  ms += hour * 3_600_000 + minute * 60_000;
  let i = 16;
  if (s.charCodeAt(i) === 0x3a) {
    const second = digits(s, i + 1, 2);
    // 60: a leap second, read as the first of the next minute.
    if (second < 0 || second > 60) return NaN;
    ms += second * 1000;
    i += 3;
    const c = s.charCodeAt(i);
    if (c === 0x2e || c === 0x2c) {
      const from = ++i;
      while (isDigit(s.charCodeAt(i))) i++;
      if (i === from) return NaN;
      // Milliseconds: the first three digits, the rest dropped (floored, as for epoch milliseconds).
      for (let k = from, scale = 100; k < i && scale >= 1; k++, scale /= 10) ms += (s.charCodeAt(k) - 0x30) * scale;
    }
  }
  if (i === n) return ms;
  const z = s.charCodeAt(i);
  if (z === 0x5a || z === 0x7a) return i + 1 === n ? ms : NaN;
  if (z !== 0x2b && z !== 0x2d) return NaN;
  const offsetHours = digits(s, i + 1, 2);
  i += 3;
  let offsetMinutes = 0;
  if (i < n) {
    if (s.charCodeAt(i) === 0x3a) i++;
    offsetMinutes = digits(s, i, 2);
    i += 2;
  }
  if (i !== n || offsetHours < 0 || offsetHours > 23 || offsetMinutes < 0 || offsetMinutes > 59) return NaN;
  const offset = (offsetHours * 60 + offsetMinutes) * 60_000;
  return z === 0x2b ? ms - offset : ms + offset;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The decimal number of `count` digits at `at`, or -1. */
function digits(s: string, at: number, count: number): number {
  let value = 0;
  for (let k = at; k < at + count; k++) {
    const c = s.charCodeAt(k);
    if (!isDigit(c)) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value;
}
