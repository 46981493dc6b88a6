import { inflateRawSync } from 'node:zlib';

/** The sizes of the gzip members of `gz` (each: a 10-byte header without options, deflate data, an 8-byte trailer). */
export function gzipMembers(gz: Buffer): number[] {
  const sizes: number[] = [];
  for (let at = 0; at < gz.length; ) {
    if (gz[at] !== 0x1f || gz[at + 1] !== 0x8b || gz[at + 3] !== 0) throw new Error(`no plain gzip member at ${at}`);
    const { engine } = inflateRawSync(gz.subarray(at + 10), { info: true }) as unknown as { engine: { bytesWritten: number } };
    const size = 10 + engine.bytesWritten + 8;
    sizes.push(size);
    at += size;
  }
  return sizes;
}

/** Sync flush markers (an empty stored block: 00 00 ff ff), which a deflate stream has where pieces compressed apart meet. */
export function syncFlushes(gz: Buffer): number {
  let count = 0;
  for (let at = gz.indexOf('0000ffff', 0, 'hex'); at !== -1; at = gz.indexOf('0000ffff', at + 4, 'hex')) count += 1;
  return count;
}
