import type { ReduceOp, WireCodec } from '../codecs/codec.js';
import { shardRange } from './shard.js';

export type ShardedKind = 'allReduce' | 'reduceScatter' | 'allGather';

/** What a reduce-scatter / all-gather collective works on (ring or direct). */
export interface ShardedParams {
  kind: ShardedKind;
  /** The full-length fp32 buffer: reduced in place (allReduce, own shard for reduceScatter), or the allGather output. */
  buf: Float32Array;
  codec: WireCodec;
  op: ReduceOp;
  /** Divide the reduced shard by the group size (op 'avg'). */
  average: boolean;
  /** Elements per pipelined piece. */
  pieceElems: number;
}

/**
 * The layout both algorithms share: the buffer split into n shards by shardRange, each shard
 * into pieces of `pieceElems` (the last one shorter), and one received-flag per (phase, shard,
 * piece) so a duplicate piece is refused.
 */
export class ShardPieces {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** Pieces per shard. */
  readonly pieces: number[] = [];
  private readonly base: number[] = [];
  private readonly total: number;
  private readonly seen: Uint8Array;

  constructor(private readonly buf: Float32Array, readonly n: number, readonly pieceElems: number) {
    let total = 0;
    for (let c = 0; c < n; c++) {
      const { start, end } = shardRange(buf.length, n, c);
      this.starts.push(start);
      this.ends.push(end);
      this.pieces.push(Math.ceil((end - start) / pieceElems));
      this.base.push(total);
      total += this.pieces[c];
    }
    this.total = total;
    this.seen = new Uint8Array(2 * total);
  }

  /** The values of one piece (a view of the buffer). */
  slice(shard: number, piece: number): Float32Array {
    const start = this.starts[shard] + piece * this.pieceElems;
    return this.buf.subarray(start, Math.min(this.ends[shard], start + this.pieceElems));
  }

  /** Pieces in every shard but `skip`. */
  piecesExcept(skip: number): number {
    return this.pieces.reduce((acc, k, c) => (c === skip ? acc : acc + k), 0);
  }

  /** The flag index of (phase 0 or 1, shard, piece). */
  flag(phase: number, shard: number, piece: number): number {
    return phase * this.total + this.base[shard] + piece;
  }

  isSeen(flag: number): boolean {
    return this.seen[flag] === 1;
  }

  markSeen(flag: number): void {
    this.seen[flag] = 1;
  }
}
