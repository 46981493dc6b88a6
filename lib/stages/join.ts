import { Transform, type TransformCallback } from 'node:stream';
import type { Acks, BytesPiece, LinesPiece } from '../batch.js';
import { joinLines } from '../framing.js';

/**
 * Stage 4: arrays of `LinesPiece` → arrays of `BytesPiece`: the lines of each
 * piece as one buffer, each line followed by `\n` (one copy, no concatenation
 * per line), with the acks of those lines that had one. Batch ends pass
 * through in order.
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
      out[i] = 'end' in piece ? piece : { batch: piece.batch, data: joinLines(piece.lines, piece.bytes), acks: presentAcks(piece.acks), events: piece.lines.length };
    }
    this.push(out);
    callback();
  }
}

/** The acks that are there (lines are joined: which line had which no longer matters). */
function presentAcks(acks: Acks): Acks {
  if (acks === null) return null;
  const present = acks.filter((ack) => ack !== undefined);
  return present.length > 0 ? present : null;
}
