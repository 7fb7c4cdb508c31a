import { AdamW, type AdamWConfig, type AdamWState, type Range } from '../adamw.js';
import type { ZeroPartition } from './partition.js';

/** Where a vector lives: the full flat layout, or this rank's shard space. */
export type Space = 'flat' | 'shard';

/**
 * AdamW over this rank's pieces only: m and v exist for the pieces it owns (ZeRO's optimizer
 * state partitioning, stages 1-3). Element for element it is the unpartitioned update, so a
 * partitioned run follows the same trajectory.
 */
export class ShardedAdamW {
  readonly optimizer: AdamW;

  constructor(config: AdamWConfig, readonly partition: ZeroPartition, decayRanges: readonly Range[]) {
    this.optimizer = new AdamW(config, { start: 0, end: partition.shardSize }, partition.toShardSpace(decayRanges));
  }

  /**
   * Updates this rank's pieces. Parameters and gradients may each be full flat vectors (stage 1
   * keeps both in full, stage 2 the parameters) or shard-space vectors (stage 3 keeps both there).
   */
  update(params: Float32Array, paramSpace: Space, grads: Float32Array, gradSpace: Space, lr: number): void {
    const view = (v: Float32Array, space: Space, p: { flatStart: number; flatEnd: number; shardOffset: number }) =>
      space === 'flat' ? v.subarray(p.flatStart, p.flatEnd) : v.subarray(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart);
    this.optimizer.updateChunks(
      this.partition.pieces.map((p) => ({ offset: p.shardOffset, params: view(params, paramSpace, p), grads: view(grads, gradSpace, p) })),
      lr,
    );
  }

  get bytes(): number {
    return this.optimizer.m.byteLength + this.optimizer.v.byteLength;
  }

  state(): AdamWState {
    return this.optimizer.state();
  }
}
