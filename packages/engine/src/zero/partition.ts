import { shardRange } from '@trainer/comm';
import { TrainerError } from '@trainer/errors';

/**
 * How ZeRO splits the flat parameter vector over the data-parallel group.
 *
 * The model's flat vector is a sequence of contiguous *units* (the embedding, each transformer
 * block, the final LayerNorm): the granules that are gathered, computed and freed together under
 * stage 3. Every unit is split evenly over the N ranks (FSDP's flat-parameter sharding): rank r
 * owns elements [u.start + shardRange(|u|, N, r)) of unit u. Shard boundaries therefore fall
 * anywhere inside tensors, and a unit smaller than N leaves some ranks an empty piece; nothing
 * assumes otherwise.
 *
 * A rank's pieces, concatenated in unit order, form its *shard space* (about total/N elements):
 * where its optimizer state, its gradient partition and (stage 3) its parameters live.
 *
 *   flat:   [ unit 0            | unit 1      | ... ]
 *   rank r:   [piece r of u0]      [piece r of u1]
 *   shard:  [ piece r of u0 | piece r of u1 | ... ]
 */
export interface Unit {
  /** e.g. 'embedding', 'h.3', 'final'. */
  name: string;
  start: number;
  end: number;
}

export interface Piece {
  unit: number;
  /** Range in the flat vector. */
  flatStart: number;
  flatEnd: number;
  /** Where the piece starts in this rank's shard space. */
  shardOffset: number;
}

/** The recorded layout (for checkpoints and resharding): every unit's split over every rank. */
export interface PartitionLayout {
  scheme: 'per-unit-balanced';
  world: number;
  totalSize: number;
  units: { name: string; start: number; end: number; shards: [number, number][] }[];
}

export class ZeroPartition {
  readonly units: readonly Unit[];
  readonly world: number;
  readonly rank: number;
  readonly totalSize: number;
  /** This rank's pieces, one per unit (possibly empty), in unit order. */
  readonly pieces: readonly Piece[];
  /** Length of this rank's shard space. */
  readonly shardSize: number;

  constructor(units: readonly Unit[], world: number, rank: number) {
    checkUnits(units);
    if (!Number.isInteger(world) || world < 1 || !Number.isInteger(rank) || rank < 0 || rank >= world) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `ZeroPartition: rank ${rank} of world ${world} is not valid`);
    }
    this.units = units;
    this.world = world;
    this.rank = rank;
    this.totalSize = units.length ? units[units.length - 1].end : 0;
    let offset = 0;
    this.pieces = units.map((u, i) => {
      const s = pieceOf(u, world, rank);
      const piece = { unit: i, flatStart: s.start, flatEnd: s.end, shardOffset: offset };
      offset += s.end - s.start;
      return piece;
    });
    this.shardSize = offset;
  }

  /** The piece of unit `u` that rank `rank` owns, in flat coordinates. */
  pieceOf(u: number, rank: number): { start: number; end: number } {
    return pieceOf(this.units[u], this.world, rank);
  }

  /** Maps flat ranges (e.g. weight-decay ranges) into this rank's shard space. */
  toShardSpace(ranges: readonly { start: number; end: number }[]): { start: number; end: number }[] {
    const out: { start: number; end: number }[] = [];
    for (const p of this.pieces) {
      for (const r of ranges) {
        const s = Math.max(r.start, p.flatStart);
        const e = Math.min(r.end, p.flatEnd);
        if (e > s) out.push({ start: p.shardOffset + s - p.flatStart, end: p.shardOffset + e - p.flatStart });
      }
    }
    return out.sort((a, b) => a.start - b.start);
  }

  /** Copies this rank's pieces of a flat vector into shard space. */
  gatherOwned(flat: Float32Array, shard: Float32Array): void {
    for (const p of this.pieces) shard.set(flat.subarray(p.flatStart, p.flatEnd), p.shardOffset);
  }

  describe(): PartitionLayout {
    return {
      scheme: 'per-unit-balanced',
      world: this.world,
      totalSize: this.totalSize,
      units: this.units.map((u) => ({
        name: u.name, start: u.start, end: u.end,
        shards: Array.from({ length: this.world }, (_, r) => {
          const s = pieceOf(u, this.world, r);
          return [s.start, s.end] as [number, number];
        }),
      })),
    };
  }
}

/** Balanced split of a unit: comm's shardRange, so reduce-scatter and all-gather agree with it. */
function pieceOf(u: Unit, world: number, rank: number): { start: number; end: number } {
  const s = shardRange(u.end - u.start, world, rank);
  return { start: u.start + s.start, end: u.start + s.end };
}

function checkUnits(units: readonly Unit[]): void {
  let pos = 0;
  for (const u of units) {
    if (u.start !== pos || u.end < u.start) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `ZeroPartition: units must tile the flat vector in order; ${u.name} is [${u.start}, ${u.end}) after position ${pos}`);
    }
    pos = u.end;
  }
}
