/**
 * Durations and sizes as people type them on a command line.
 * Durations: `500ms`, `30s`, `1m`, `1h` (a bare number is milliseconds).
 * Sizes: `8MiB`, `64M` (K, M, G and KiB, MiB, GiB are powers of 1024; KB, MB,
 * GB powers of 1000); a bare number is bytes.
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** Milliseconds, or `null` when `text` is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] as number);
  return Number.isFinite(ms) && Number.isInteger(ms) && ms > 0 ? ms : null;
}

/** Bytes, or `null` when `text` is not a size. */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return null;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase() || 'b'];
  if (unit === undefined) return null;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}

/** `1536` → `1.5 KiB`, for people. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
