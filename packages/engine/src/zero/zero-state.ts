import { AdamW, type AdamWConfig, type Range } from '../adamw.js';
import { HalfStore, makeStore, type Precision, type VectorStore } from '../precision/vector-store.js';
import type { ZeroPartition } from './partition.js';
import type { ZeroStage } from './zero-trainer.js';

/** A piece of the flat vector: its flat range and where it sits in this rank's shard space. */
type PieceRange = { flatStart: number; flatEnd: number; shardOffset: number };

/** A rank's share of one piece of the training state, as a checkpoint saves it (views into the state). */
export interface ExportedPiece {
  flatStart: number;
  flatEnd: number;
  /** fp32 parameters: the master copy under 16-bit precisions. */
  params: Float32Array;
  /** bf16/fp16 only: the working parameters' 16-bit codes, exactly round(params). */
  params16?: Uint16Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * What one rank keeps of the training state under a ZeRO stage and precision, and the element-
 * wise update on it:
 *
 *   working    parameters as compute reads them, in the run's precision: full (stages 0-2) or
 *              own pieces in shard space (stage 3)
 *   master     fp32 parameters when the working copy is 16-bit: full (stage 0) or own pieces
 *   grads      gradients in the run's precision: full (stages 0-1) or own pieces (stages 2-3)
 *   optimizer  AdamW's m and v: full (stage 0) or own pieces
 *
 * The update runs on the master (or the fp32 working copy) and the working copy is its rounding.
 */
export class ZeroState {
  readonly working: VectorStore;
  readonly master: Float32Array | null;
  readonly grads: VectorStore;
  readonly optimizer: AdamW;

  constructor(
    private readonly totalSize: number,
    private readonly partition: ZeroPartition,
    readonly stage: ZeroStage,
    readonly precision: Precision,
    adamw: AdamWConfig,
    decayRanges: readonly Range[],
    initialParams: Float32Array,
  ) {
    const shardSize = partition.shardSize;
    const own = new Float32Array(shardSize);
    partition.gatherOwned(initialParams, own);
    this.working = makeStore(precision, stage === 3 ? shardSize : totalSize, stage === 3 ? own : initialParams);
    this.master = precision === 'fp32' ? null : stage === 0 ? new Float32Array(initialParams) : own;
    this.grads = makeStore(precision, stage >= 2 ? shardSize : totalSize);
    this.optimizer = stage === 0
      ? new AdamW(adamw, { start: 0, end: totalSize }, decayRanges)
      : new AdamW(adamw, { start: 0, end: shardSize }, partition.toShardSpace(decayRanges));
  }

  /** The pieces this rank updates: the whole vector under stage 0, its own pieces otherwise. */
  private updatedPieces(): PieceRange[] {
    const pieces = this.stage === 0 ? [{ flatStart: 0, flatEnd: this.totalSize, shardOffset: 0 }] : this.partition.pieces;
    return pieces.filter((p) => p.flatEnd > p.flatStart);
  }

  /** fp32 values the optimizer updates for a piece: the master, or the fp32 working copy itself. */
  masterView(p: PieceRange): Float32Array {
    const n = p.flatEnd - p.flatStart;
    if (this.master) return this.stage === 0 ? this.master.subarray(p.flatStart, p.flatEnd) : this.master.subarray(p.shardOffset, p.shardOffset + n);
    return this.stage === 3 ? this.working.read(p.shardOffset, p.shardOffset + n) : this.working.read(p.flatStart, p.flatEnd);
  }

  /** [start, end) ranges of `grads` holding this rank's valid sums after the reduction, with their flat starts. */
  ownGradientRanges(): [number, number, number][] {
    if (this.stage === 0) return [[0, this.grads.length, 0]];
    return this.partition.pieces.map((p) => {
      const n = p.flatEnd - p.flatStart;
      return this.stage >= 2 ? [p.shardOffset, p.shardOffset + n, p.flatStart] : [p.flatStart, p.flatEnd, p.flatStart];
    });
  }

  /** AdamW on the master with gradients multiplied by `factor`; then the working copy follows. */
  applyUpdate(factor: number, lr: number): void {
    const pieces = this.updatedPieces();
    const chunks = pieces.map((p) => {
      const g = this.stage >= 2 ? this.grads.read(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart) : this.grads.read(p.flatStart, p.flatEnd);
      if (factor !== 1) for (let i = 0; i < g.length; i++) g[i] *= factor;
      return { offset: p.shardOffset, params: this.masterView(p), grads: g };
    });
    this.optimizer.updateChunks(chunks, lr);
    if (!this.master) return;
    // The working copy is the master's rounding.
    pieces.forEach((p, i) => this.working.write(this.stage === 3 ? p.shardOffset : p.flatStart, chunks[i].params));
  }

  /**
   * This rank's share for a sharded checkpoint: for each of its pieces, the flat range, the fp32
   * parameters (the master under 16-bit precisions), AdamW's m and v, and under bf16/fp16 the
   * working copy's 16-bit codes (the master's rounding: applyUpdate and importState keep them
   * so, and the all-gather of stages 1-2 writes back the codes each owner sent). Every element
   * is owned by exactly one rank whatever the stage (stages 0-2 hold copies of the rest, not
   * written twice). Views: copy them before the next step.
   */
  exportPieces(): { optimizerStep: number; precision: Precision; pieces: ExportedPiece[] } {
    const adam = this.optimizer;
    const half = this.working instanceof HalfStore ? this.working.data : undefined;
    return {
      optimizerStep: adam.step,
      precision: this.precision,
      pieces: this.partition.pieces.filter((p) => p.flatEnd > p.flatStart).map((p) => {
        const at = this.stage === 0 ? p.flatStart : p.shardOffset;
        const n = p.flatEnd - p.flatStart;
        const w = this.stage === 3 ? p.shardOffset : p.flatStart; // where the working copy holds the piece
        return {
          flatStart: p.flatStart, flatEnd: p.flatEnd, params: this.masterView(p), m: adam.m.subarray(at, at + n), v: adam.v.subarray(at, at + n),
          ...(half ? { params16: half.subarray(w, w + n) } : {}),
        };
      }),
    };
  }

  /**
   * Restores from any layout: `read(kind, start, end)` returns flat range [start, end) of the
   * fp32 parameters, m or v, sliced out of whatever shards hold them. This rank reads only what
   * it keeps: all parameters under stages 0-2, its own pieces otherwise. A checkpoint's 16-bit
   * parameters are not read: the working copy is the master's rounding in this run's precision
   * (the same codes when the precision is the writer's), so any precision resumes any checkpoint.
   */
  async importState(optimizerStep: number, read: (kind: 'params' | 'm' | 'v', start: number, end: number) => Promise<Float32Array>): Promise<void> {
    const adam = this.optimizer;
    const total = this.totalSize;
    // Stages 0-2 keep every parameter: read them once; their master pieces come from the same values.
    const all = this.stage < 3 ? await read('params', 0, total) : null;
    if (all) this.working.write(0, all);
    if (this.stage === 0) {
      if (this.master) this.master.set(all!);
      adam.m.set(await read('m', 0, total));
      adam.v.set(await read('v', 0, total));
    } else {
      for (const p of this.partition.pieces) {
        if (p.flatEnd === p.flatStart) continue;
        if (this.master || this.stage === 3) {
          const values = all ? all.subarray(p.flatStart, p.flatEnd) : await read('params', p.flatStart, p.flatEnd);
          if (this.master) this.master.set(values, p.shardOffset);
          if (this.stage === 3) this.working.write(p.shardOffset, values);
        }
        adam.m.set(await read('m', p.flatStart, p.flatEnd), p.shardOffset);
        adam.v.set(await read('v', p.flatStart, p.flatEnd), p.shardOffset);
      }
    }
    adam.step = optimizerStep;
  }

  bytes(): { params: number; master: number; grads: number; optimizer: number } {
    return {
      params: this.working.bytes,
      master: this.master?.byteLength ?? 0,
      grads: this.grads.bytes,
      optimizer: this.optimizer.m.byteLength + this.optimizer.v.byteLength,
    };
  }
}
