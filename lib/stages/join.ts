import { Transform, type TransformCallback } from 'node:stream';
import type { Acks, BytesPiece, LinesPiece } from '../batch.js';
import { joinLines, type Line } from '../framing.js';

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
      out[i] = 'end' in piece ? piece : { batch: piece.batch, data: stretch(piece) ?? joinLines(piece.lines, piece.bytes), acks: presentAcks(piece.acks), events: piece.events ?? piece.lines.length };
    }
    this.push(out);
    callback();
  }
}

/**
 * A stretch of lines as read (`Routed.events`) is already framed where it
 * lies, in lineGroups' copy: its bytes and the \n after it, as a view, with
 * no second copy. `null` for any other piece (or one whose next byte is not
 * that \n after all).
 */
function stretch(piece: { lines: Line[]; events?: number }): Buffer | null {
  if (piece.events === undefined || piece.lines.length !== 1) return null;
  const entry = piece.lines[0] as Line;
  if (typeof entry === 'string' || entry.byteOffset + entry.length >= entry.buffer.byteLength) return null;
  const framed = Buffer.from(entry.buffer, entry.byteOffset, entry.length + 1);
  return framed[entry.length] === 10 ? framed : null;
}

/** The acks that are there (lines are joined: which line had which no longer matters). */
function presentAcks(acks: Acks): Acks {
  if (acks === null) return null;
  const present = acks.filter((ack) => ack !== undefined);
  return present.length > 0 ? present : null;
}
