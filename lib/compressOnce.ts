import zlib from 'node:zlib';

/**
 * `zlib.gzip` and `zlib.deflateRaw` of a whole buffer, in one trip to
 * libuv's thread pool instead of two, with the same bytes out.
 *
 * Node's one-shot calls write the input to a zlib stream and end it: the
 * input goes to the pool with no flush, and the end makes a second trip to
 * flush what deflate still holds (its last 262 bytes of lookahead and its
 * pending block). Here the input goes with the finishing flush itself
 * (`finishFlush`: `Z_FINISH` unless the options say otherwise, as for a
 * piece of a member: `Z_SYNC_FLUSH`), and the stream is closed once that
 * write is done, without ending it. At levels 1 to 9 deflate's choices do
 * not depend on how its input and flushes are split among calls, so the
 * output is the same bytes (test/compress-once.test.ts compares them). At
 * level 0 they do (stored blocks are cut where a call's input or output
 * ends), so level 0 goes through zlib's own calls, as before: a batch the
 * spool delivers again after an upgrade must be the same bytes as the
 * parts an earlier version uploaded.
 *
 * Each trip wakes a pool thread, and on a busy machine the main thread can
 * lose its core to the thread it woke. At 1 000 destinations a run makes
 * about 2 700 such compressions per 200 MiB (README, Performance).
 */
export function compressOnce(format: 'gzip' | 'deflateRaw', raw: Buffer, options: zlib.ZlibOptions, done: (err: Error | null, compressed: Buffer) => void): void {
  if (options.level === 0) {
    zlib[format](raw, options, done);
    return;
  }
  const flush = options.finishFlush ?? zlib.constants.Z_FINISH;
  const stream = format === 'gzip' ? zlib.createGzip({ ...options, flush }) : zlib.createDeflateRaw({ ...options, flush });
  const out: Buffer[] = [];
  let bytes = 0;
  let settled = false;
  const settle = (err: Error | null): void => {
    if (settled) return;
    settled = true;
    // Not ended, and never to be: closing frees zlib's memory now.
    stream.close();
    if (err) done(err, EMPTY);
    else done(null, out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, bytes));
  };
  // Output comes as 'data' before the write calls back: the stream flows, and the pool's answer is never on the write's stack.
  stream.on('data', (chunk: Buffer) => {
    out.push(chunk);
    bytes += chunk.length;
  });
  stream.on('error', (err: Error) => settle(err));
  stream.write(raw, (err) => {
    // A stream destroyed by a zlib error calls back without one: its 'error' event settles.
    if (err || !stream.destroyed) settle(err ?? null);
  });
}

const EMPTY = Buffer.alloc(0);
