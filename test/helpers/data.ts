/** Deterministic test data: the same seed gives the same bytes on every run. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** A line of `length` characters that gzip cannot shrink much (random base64). */
export function noisyLine(random: () => number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[Math.floor(random() * 64)];
  return s;
}

/** A JSON log line like a service writes. */
export function logLine(i: number, service = 'api'): string {
  return JSON.stringify({ ts: 1_700_000_000_000 + i, level: i % 10 === 0 ? 'warn' : 'info', service, msg: `request ${i} served`, ms: i % 97 });
}
