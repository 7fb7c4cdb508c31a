import { AdamW, type AdamWConfig, type AdamWState, type Range } from '../adamw.js';
import type { ZeroPartition } from './partition.js';

/**
 * AdamW over this rank's shard space: m and v exist only for the pieces this rank owns (ZeRO's
 * optimizer-state partitioning, stages 1-3). Element for element it is the same update as the
 * unpartitioned AdamW, so a partitioned run follows the same trajectory.
 */
export class ShardedAdamW {
  readonly optimizer: AdamW;

  constructor(config: AdamWConfig, readonly partition: ZeroPartition, decayRanges: readonly Range[]) {
    this.optimizer = new AdamW(config, { start: 0, end: partition.shardSize }, partition.toShardSpace(decayRanges));
  }

  /** Update on shard-space vectors (stage 3 keeps its parameters there). */
  updateShard(params: Float32Array, grads: Float32Array, lr: number): void {
    this.optimizer.update(params, grads, lr);
  }

  /** Update the owned pieces in place inside full flat parameters (stages 1 and 2 keep them all). */
  updateFlat(flatParams: Float32Array, shardGrads: Float32Array, lr: number): void {
    const chunks = this.partition.pieces.map((p) => ({
      offset: p.shardOffset,
      params: flatParams.subarray(p.flatStart, p.flatEnd),
      grads: shardGrads.subarray(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart),
    }));
    this.optimizer.updateChunks(chunks, lr);
  }

  get bytes(): number {
    return this.optimizer.m.byteLength + this.optimizer.v.byteLength;
  }

  state(): AdamWState {
    return this.optimizer.state();
  }
}
