import { Transform, type TransformCallback } from 'node:stream';
import type { BytesPiece, LinesPiece } from '../batch.js';
import { joinLines } from '../framing.js';

/**
 * Stage 4: arrays of `LinesPiece` → arrays of `BytesPiece`: the lines of each
 * piece as one buffer, each line followed by `\n` (one copy, no concatenation
 * per line). Batch ends pass through in order.
 */
export function join(): Join {
  return new Join();
}

export class Join extends Transform {
  constructor() {
    super({ objectMode: true, highWaterMark: 4 });
  }

  override _transform(pieces: LinesPiece[], _encoding: BufferEncoding, callback: TransformCallback): void {
    const out: BytesPiece[] = new Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as LinesPiece;
      out[i] = 'end' in piece ? piece : { batch: piece.batch, data: joinLines(piece.lines, piece.bytes) };
    }
    this.push(out);
    callback();
  }
}
