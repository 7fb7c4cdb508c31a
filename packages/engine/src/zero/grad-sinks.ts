import type { CollectiveGroup, SegmentedModel, WireCodec } from '../interfaces.js';
import type { VectorStore } from '../precision/vector-store.js';
import type { GradSink } from '../segment-runner.js';
import type { ZeroPartition } from './partition.js';
import { BucketPool } from './bucket-pool.js';

/**
 * Stages 0-1: every rank accumulates the full gradient; it is reduced after the last micro-batch.
 * An fp32 store is written in place; a 16-bit store gets a segment's unit gradient in an fp32
 * bucket first, added (one rounding) as soon as the segment is done.
 */
export class FullGradSink implements GradSink {
  private readonly live = new Map<number, Float32Array>();
  private readonly pool = new BucketPool();

  constructor(private readonly model: SegmentedModel, private readonly grads: VectorStore) {}

  buffers(units: readonly number[]): Map<number, Float32Array> {
    const { grads, model } = this;
    return new Map(units.map((u) => {
      const unit = model.units[u];
      if (grads.precision === 'fp32') return [u, grads.read(unit.start, unit.end)] as const;
      let buf = this.live.get(u);
      if (!buf) {
        buf = this.pool.take(unit.end - unit.start);
        this.live.set(u, buf);
      }
      return [u, buf] as const;
    }));
  }

  unitDone(u: number): Promise<void> {
    const buf = this.live.get(u);
    if (buf) {
      this.grads.add(this.model.units[u].start, buf);
      this.live.delete(u);
      this.pool.give(buf);
    }
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Bytes of the fp32 buckets (16-bit stores only), in use or kept for reuse. */
  get peakBucketBytes(): number {
    return this.pool.allocatedBytes;
  }
}

/**
 * Stages 2-3: a unit's gradient exists in full only while a segment adds to it; then it is
 * reduce-scattered and this rank keeps (adds into its accumulator) only its own piece. At most
 * `maxInFlight` reductions run at once (backward waits for the oldest before it goes on), so the
 * gradient never exists in full for the whole model: the buckets alive at once are the unit being
 * reduced and the unit being computed. (Waiting costs little here: compute is synchronous, so a
 * reduction progresses only while backward waits anyway.)
 */
export const DEFAULT_MAX_REDUCTIONS_IN_FLIGHT = 1;

export class ShardedGradSink implements GradSink {
  private readonly live = new Map<number, Float32Array>();
  private readonly pool = new BucketPool();
  private pending: Promise<void>[] = [];

  constructor(
    private readonly model: SegmentedModel,
    private readonly group: CollectiveGroup,
    private readonly partition: ZeroPartition,
    /** This rank's accumulated gradient pieces, in shard space, in the run's precision. */
    private readonly shardGrads: VectorStore,
    private readonly codec: WireCodec,
    private readonly maxInFlight = DEFAULT_MAX_REDUCTIONS_IN_FLIGHT,
  ) {}

  buffers(units: readonly number[]): Map<number, Float32Array> {
    return new Map(units.map((u) => {
      let buf = this.live.get(u);
      if (!buf) {
        const unit = this.model.units[u];
        buf = this.pool.take(unit.end - unit.start);
        this.live.set(u, buf);
      }
      return [u, buf] as const;
    }));
  }

  async unitDone(u: number): Promise<void> {
    const buf = this.live.get(u);
    if (!buf) return;
    this.live.delete(u);
    const piece = this.partition.pieces[u];
    this.pending.push(this.group.reduceScatter(buf, { op: 'sum', codec: this.codec }).then((mine) => {
      this.shardGrads.add(piece.shardOffset, mine);
      this.pool.give(buf);
    }));
    while (this.pending.length > this.maxInFlight) await this.pending.shift();
  }

  async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
  }

  /** Bytes of full unit gradients (buckets being filled or reduced), in use or kept for reuse. */
  get peakBucketBytes(): number {
    return this.pool.allocatedBytes;
  }
}
