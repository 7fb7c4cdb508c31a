import { TrainerError } from '@trainer/errors';
import { AdamW, type Range } from '../adamw.js';
import { clipFactor, scaleInPlace, sumOfSquares } from '../grad-clip.js';
import { allReduceGradients, DEFAULT_GRADIENT_SYNC } from '../gradient-sync.js';
import type { CollectiveGroup, Disposable, LossResult, MicroBatch, ReduceGroup, SegmentedModel, WireCodec } from '../interfaces.js';
import { learningRateAt } from '../lr-schedule.js';
import { SegmentRunner, type GradSink, type ParamSource } from '../segment-runner.js';
import { runPipelineForward, runPipelineSchedule, type PipelineStage } from '../pipeline/pipeline-executor.js';
import { countTargets, type StepResult, type TrainerOptions } from '../trainer-options.js';
import { FullGradSink, ShardedGradSink } from './grad-sinks.js';
import { GatheredParams, ResidentParams } from './param-sources.js';
import { ZeroPartition } from './partition.js';
import { ShardedAdamW } from './sharded-adamw.js';

export type ZeroStage = 0 | 1 | 2 | 3;

/**
 * Data parallelism with ZeRO (Rajbhandari et al., 2020), stages 0-3, on a segmented model.
 *
 *   stage  parameters        gradients                     optimizer state   after backward
 *   0      full              full, all-reduced             full              every rank updates all
 *   1      full              full, reduced to own pieces   own pieces        update own pieces, all-gather
 *   2      full              own pieces (reduce-scatter)   own pieces        update own pieces, all-gather
 *   3      own pieces        own pieces (reduce-scatter)   own pieces        update own pieces; units
 *                                                                            gathered when a segment runs
 *
 * Stage 1 accumulates full gradients locally over micro-batches (no traffic until the last), then
 * reduces them with a reduce-scatter, the first half of an all-reduce: a rank updates only its
 * own pieces, so it needs only their sums, and the traffic stays data parallelism's 2(N-1)/N x
 * model bytes (reduce-scatter + parameter all-gather), as in the ZeRO paper's P_os.
 *
 * Pieces follow ZeroPartition (every unit split evenly over the ranks). Every stage computes the
 * same update: the global gradient is sum_rank sum_micro (c_m / C) grad(mean loss of micro m),
 * its norm is taken over the whole (partitioned) gradient, and AdamW is element-wise; only the
 * order of fp32 additions differs between stages.
 */
export interface ZeroOptions<A = unknown> extends TrainerOptions {
  stage: ZeroStage;
  /** Wire codec for gradients and gathered parameters (fp32 unless mixed precision). */
  codec?: WireCodec;
  /** Recompute blocks in backward instead of keeping their activations (SegmentRunner). */
  checkpointActivations?: boolean;
  /** Bytes the compute backend holds now (tf.memory().numBytes); sampled for the per-step peak. */
  backendBytes?: () => number;
  /**
   * When the model is split further (tensor or pipeline parallel), the global gradient norm sums
   * every rank's unique elements: `group` spans all those ranks (usually the world), and this
   * rank leaves out `exclude` (ranges it holds as copies of another rank's: tensor-parallel
   * replicated parameters on all but the first tensor-parallel rank, the pipeline's second copy
   * of the tied embedding). Absent: the data-parallel group alone holds the whole model.
   */
  norm?: { group: ReduceGroup; exclude: readonly Range[] };
  /** This rank is one stage of a pipeline: micro-batches run by the 1F1B schedule. */
  pipeline?: PipelineStage<A> & { group: ReduceGroup };
  /**
   * A tied parameter held by two pipeline stages (the embedding, used by the first stage's
   * lookup and the last stage's head): its gradient is summed over `group` (the two stages'
   * ranks) before every step. It is the first `length` elements of unit `unit`.
   */
  tied?: { group: ReduceGroup; unit: number; length: number };
}

/** Bytes this rank holds for its model state, by kind, measured from the buffers themselves. */
export interface ModelStateBytes {
  /** fp32 parameter values kept by the engine (full, or own pieces under stage 3). */
  paramsMaster: number;
  /** The compute copy uploaded to the backend (all units, or the peak of gathered units under stage 3). */
  paramsCompute: number;
  /** Gradient buffers (full, or own pieces plus the peak of unit buckets under stages 2-3). */
  grads: number;
  /** AdamW's m and v. */
  optimizer: number;
  total: number;
}

export class ZeroTrainer<A extends Disposable, P extends Disposable> {
  readonly stage: ZeroStage;
  readonly partition: ZeroPartition;
  private readonly runner: SegmentRunner<A, P>;
  private readonly codec: WireCodec;
  /** Full fp32 parameters (stages 0-2). */
  private readonly params: Float32Array | null;
  /** Own parameter pieces (stage 3). */
  private readonly shardParams: Float32Array | null;
  /** Full gradient (stages 0-1) or own gradient pieces (stages 2-3). */
  private readonly grads: Float32Array;
  private readonly fullOptimizer: AdamW | null;
  private readonly shardedOptimizer: ShardedAdamW | null;
  private readonly source: ResidentParams<P> | GatheredParams<P>;
  private readonly sink: GradSink;
  private readonly scalar = new Float32Array(1);
  private peakBackend = 0;
  /** Idle share of the last step's pipeline schedule (0 without a pipeline). */
  bubble = 0;

  constructor(
    readonly model: SegmentedModel<A, P>,
    readonly group: CollectiveGroup,
    initialParams: Float32Array,
    private readonly options: ZeroOptions<A>,
  ) {
    if (initialParams.length !== model.totalSize) {
      throw new TrainerError('TRAINER_ERR_PARAM_SIZE', `initial parameters have ${initialParams.length} elements, the model needs ${model.totalSize}`);
    }
    if (![0, 1, 2, 3].includes(options.stage)) {
      throw new TrainerError('TRAINER_ERR_ZERO_STAGE', `ZeRO stage ${String(options.stage)} does not exist`, { hint: 'use --zero 0, 1, 2 or 3' });
    }
    this.stage = options.stage;
    this.codec = options.codec ?? 'fp32';
    const probe = options.backendBytes;
    this.runner = new SegmentRunner(model, {
      sample: probe ? () => (this.peakBackend = Math.max(this.peakBackend, probe())) : undefined,
      checkpointActivations: options.checkpointActivations,
    });
    this.partition = new ZeroPartition(model.units, group.size, group.rank);
    const shardSize = this.partition.shardSize;
    if (this.stage === 3) {
      this.params = null;
      this.shardParams = new Float32Array(shardSize);
      this.partition.gatherOwned(initialParams, this.shardParams);
      this.source = new GatheredParams(model, group, this.partition, this.shardParams, this.codec);
    } else {
      this.params = new Float32Array(initialParams);
      this.shardParams = null;
      const resident = new ResidentParams(model);
      resident.refresh(this.params);
      this.source = resident;
    }
    this.grads = new Float32Array(this.stage >= 2 ? shardSize : model.totalSize);
    this.sink = this.stage >= 2
      ? new ShardedGradSink(model, group, this.partition, this.grads, this.codec)
      : new FullGradSink(model, this.grads);
    const adam = { ...options.adamw };
    this.fullOptimizer = this.stage === 0 ? new AdamW(adam, { start: 0, end: model.totalSize }, model.decayRanges) : null;
    this.shardedOptimizer = this.stage === 0 ? null : new ShardedAdamW(adam, this.partition, model.decayRanges);
  }

  /** One optimizer step over this rank's micro-batches of the global batch for `step`. */
  async step(step: number, microBatches: readonly MicroBatch[]): Promise<StepResult> {
    const total = await this.sumOverGroup(microBatches.reduce((s, mb) => s + countTargets(mb.targets), 0));
    if (total === 0) {
      throw new TrainerError('TRAINER_ERR_EMPTY_BATCH', `step ${step}: no target in the global batch is counted (all masked)`, {
        hint: 'check the loss mask of the training data: every example needs at least one completion token',
      });
    }
    this.grads.fill(0);
    let lossSum = 0;
    const pipeline = this.options.pipeline;
    if (pipeline) {
      const scales = microBatches.map((mb) => countTargets(mb.targets) / total);
      const r = await runPipelineSchedule(this.runner, pipeline, microBatches, scales, this.source, this.sink);
      lossSum = r.lossSum;
      this.bubble = r.wallMs > 0 ? r.idleMs / r.wallMs : 0;
    } else {
      for (const mb of microBatches) {
        const count = countTargets(mb.targets);
        if (count === 0) continue;
        const r = await this.runner.forwardBackward(mb, count / total, this.source, this.sink);
        lossSum += r.loss * r.count;
      }
    }
    // Gradients are pre-scaled by c_m / C, so every reduction is a plain sum.
    if (this.stage === 0) await allReduceGradients(this.grads, this.group, 'sum', { ...DEFAULT_GRADIENT_SYNC, ...this.options.gradientSync, codec: this.codec });
    if (this.stage === 1) await this.reduceScatterFullGradients();
    await this.sumTiedGradients();
    // Only the last pipeline stage computes the loss: share it along the pipeline.
    const loss = (await this.sumOverGroup(lossSum, pipeline?.group)) / total;

    // Global norm: of the full gradient (stage 0 holds it), or of every rank's pieces summed.
    const gradNorm = Math.sqrt(await this.globalSumOfSquares());
    if (!Number.isFinite(gradNorm) || !Number.isFinite(loss)) {
      throw new TrainerError('TRAINER_ERR_NONFINITE', `step ${step}: loss ${loss}, gradient norm ${gradNorm}: training diverged`, {
        hint: 'lower --lr, raise warmup, or enable gradient clipping (--grad-clip 1)',
        details: { step, loss, gradNorm },
      });
    }
    const factor = clipFactor(gradNorm, this.options.gradClip);
    const lr = learningRateAt(step, this.options.schedule);
    await this.update(factor, lr);
    return { step, loss, gradNorm, lr, tokens: total };
  }

  /** Stage 1: each unit's gradient reduce-scattered in place; only the own pieces hold sums after. */
  private async reduceScatterFullGradients(): Promise<void> {
    if (this.group.size === 1) return;
    for (const unit of this.model.units) await this.group.reduceScatter(this.grads.subarray(unit.start, unit.end), { op: 'sum', codec: this.codec });
  }

  /**
   * The squared norm of the whole gradient: every element counted once over all ranks. Under
   * stage 0 every data-parallel rank holds all of it (the first one counts), otherwise each its
   * own pieces; elements in `norm.exclude` are another rank's to count.
   */
  private async globalSumOfSquares(): Promise<number> {
    const exclude = this.options.norm?.exclude ?? [];
    let local = 0;
    if (this.stage === 0) {
      if (this.group.rank === 0 || !this.options.norm) local = sumOfSquaresExcept(this.grads, 0, this.grads.length, exclude);
      if (!this.options.norm) return local; // identical on every rank: nothing to add up
    } else {
      for (const p of this.partition.pieces) {
        local += this.stage >= 2
          ? sumOfSquaresExcept(this.grads.subarray(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart), p.flatStart, p.flatEnd, exclude)
          : sumOfSquaresExcept(this.grads.subarray(p.flatStart, p.flatEnd), p.flatStart, p.flatEnd, exclude);
      }
    }
    return sumFloat64(local, this.options.norm?.group ?? this.group);
  }

  private async update(clip: number, lr: number): Promise<void> {
    if (this.stage === 0) {
      scaleInPlace(this.grads, clip);
      this.fullOptimizer!.update(this.params!, this.grads, lr);
      (this.source as ResidentParams<P>).refresh(this.params!);
      return;
    }
    const opt = this.shardedOptimizer!;
    if (this.stage === 1) {
      for (const p of this.partition.pieces) scaleInPlace(this.grads.subarray(p.flatStart, p.flatEnd), clip);
      opt.update(this.params!, 'flat', this.grads, 'flat', lr);
    } else {
      scaleInPlace(this.grads, clip);
      if (this.stage === 2) opt.update(this.params!, 'flat', this.grads, 'shard', lr);
      else opt.update(this.shardParams!, 'shard', this.grads, 'shard', lr);
    }
    if (this.stage === 3) return;
    // Stages 1-2: every rank contributes its updated pieces; all get the whole vector back.
    const params = this.params!;
    for (const [u, unit] of this.model.units.entries()) {
      const piece = this.partition.pieces[u];
      const full = await this.group.allGather(params.subarray(piece.flatStart, piece.flatEnd), unit.end - unit.start, { codec: 'fp32' });
      params.set(full, unit.start);
    }
    (this.source as ResidentParams<P>).refresh(params);
  }

  /**
   * Mean loss over this rank's share of the evaluation batches, combined over the group. Ranks
   * may hold different numbers of batches; under stage 3 every forward pass gathers parameters
   * (a collective), so ranks with fewer batches run fully masked copies of one to keep in step.
   */
  async evaluate(batches: Iterable<MicroBatch>): Promise<LossResult> {
    const mine = [...batches];
    let runs = mine.length;
    if (this.stage === 3 && this.group.size > 1) {
      this.scalar[0] = runs;
      await this.group.allReduce(this.scalar, { op: 'max' });
      runs = this.scalar[0];
    }
    let lossSum = 0;
    let count = 0;
    const padded = Array.from({ length: runs }, (_, i) => mine[i] ?? maskedBatch(mine[0]));
    const pipeline = this.options.pipeline;
    if (pipeline) {
      ({ lossSum, count } = await runPipelineForward(this.runner, pipeline, padded, this.source));
    } else {
      for (const b of padded) {
        const r = await this.runner.loss(b, this.source);
        if (r.count > 0) {
          lossSum += r.loss * r.count;
          count += r.count;
        }
      }
    }
    const both = new Float32Array([lossSum, count]);
    if (this.group.size > 1) await this.group.allReduce(both, { op: 'sum' });
    if (pipeline && pipeline.group.size > 1) await pipeline.group.allReduce(both, { op: 'sum' });
    return { loss: both[1] > 0 ? both[0] / both[1] : NaN, count: both[1] };
  }

  /** The full fp32 parameters (a collective under stage 3: every rank must call it). */
  async fullParams(): Promise<Float32Array> {
    if (this.params) return new Float32Array(this.params);
    const flat = new Float32Array(this.model.totalSize);
    for (const [u, unit] of this.model.units.entries()) {
      const piece = this.partition.pieces[u];
      const mine = this.shardParams!.subarray(piece.shardOffset, piece.shardOffset + piece.flatEnd - piece.flatStart);
      flat.set(await this.group.allGather(mine, unit.end - unit.start, { codec: 'fp32' }), unit.start);
    }
    return flat;
  }

  /**
   * This rank's share of the training state, for a sharded checkpoint: for each of its pieces,
   * the flat range and views of the fp32 parameters and AdamW's m and v there. Every element of
   * the flat vector is owned by exactly one rank, whatever the stage (stages 0-2 hold copies of
   * the rest, which are not written twice). Views: copy them before the next step.
   */
  exportPieces(): { optimizerStep: number; pieces: { flatStart: number; flatEnd: number; params: Float32Array; m: Float32Array; v: Float32Array }[] } {
    const adam = this.fullOptimizer ?? this.shardedOptimizer!.optimizer;
    return {
      optimizerStep: adam.step,
      pieces: this.partition.pieces.filter((p) => p.flatEnd > p.flatStart).map((p) => {
        const inShard = (v: Float32Array) => v.subarray(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart);
        const inFlat = (v: Float32Array) => v.subarray(p.flatStart, p.flatEnd);
        return {
          flatStart: p.flatStart, flatEnd: p.flatEnd,
          params: this.params ? inFlat(this.params) : inShard(this.shardParams!),
          m: this.fullOptimizer ? inFlat(adam.m) : inShard(adam.m),
          v: this.fullOptimizer ? inFlat(adam.v) : inShard(adam.v),
        };
      }),
    };
  }

  /**
   * Restores the training state from any layout: `read(kind, start, end)` returns the values of
   * flat range [start, end) of the parameters, m or v (a checkpoint reader slices them out of
   * whatever shards hold them). This rank reads only what its stage keeps: all parameters under
   * stages 0-2, its own pieces otherwise. Resharding is therefore just reading other ranges.
   */
  async importState(optimizerStep: number, read: (kind: 'params' | 'm' | 'v', start: number, end: number) => Promise<Float32Array>): Promise<void> {
    const adam = this.fullOptimizer ?? this.shardedOptimizer!.optimizer;
    if (this.params) this.params.set(await read('params', 0, this.model.totalSize));
    for (const p of this.partition.pieces) {
      if (p.flatEnd === p.flatStart) continue;
      const at = this.fullOptimizer ? p.flatStart : p.shardOffset;
      if (this.shardParams) this.shardParams.set(await read('params', p.flatStart, p.flatEnd), p.shardOffset);
      if (!this.fullOptimizer) {
        adam.m.set(await read('m', p.flatStart, p.flatEnd), at);
        adam.v.set(await read('v', p.flatStart, p.flatEnd), at);
      }
    }
    if (this.fullOptimizer) {
      adam.m.set(await read('m', 0, this.model.totalSize));
      adam.v.set(await read('v', 0, this.model.totalSize));
    }
    adam.step = optimizerStep;
    if (this.source instanceof ResidentParams) this.source.refresh(this.params!);
  }

  /** The most bytes the backend held at a segment boundary since the last call (0 without a probe). */
  takePeakBackendBytes(): number {
    const peak = this.peakBackend;
    this.peakBackend = 0;
    return peak;
  }

  /** Model-state bytes held by this rank, measured from its buffers. */
  modelStateBytes(): ModelStateBytes {
    const paramsMaster = (this.params ?? this.shardParams!).byteLength;
    const paramsCompute = this.source instanceof ResidentParams ? this.source.residentBytes : this.source.peakResidentBytes + this.source.peakGatheredBytes;
    const grads = this.grads.byteLength + (this.sink instanceof ShardedGradSink ? this.sink.peakBucketBytes : 0);
    const optimizer = this.fullOptimizer ? this.fullOptimizer.m.byteLength + this.fullOptimizer.v.byteLength : this.shardedOptimizer!.bytes;
    return { paramsMaster, paramsCompute, grads, optimizer, total: paramsMaster + paramsCompute + grads + optimizer };
  }

  dispose(): void {
    if (this.source instanceof ResidentParams) this.source.dispose();
    else this.source.finish();
  }

  /** Sum over the data-parallel group, then (if given) over a second group. */
  private async sumOverGroup(value: number, then?: ReduceGroup): Promise<number> {
    this.scalar[0] = value;
    if (this.group.size > 1) await this.group.allReduce(this.scalar, { op: 'sum' });
    if (then && then.size > 1) await then.allReduce(this.scalar, { op: 'sum' });
    return this.scalar[0];
  }

  /** The tied embedding's gradient summed with the other stage's copy (each rank: its own piece). */
  private async sumTiedGradients(): Promise<void> {
    const tied = this.options.tied;
    if (!tied || tied.group.size === 1) return;
    const unit = this.model.units[tied.unit];
    const end = unit.start + tied.length;
    let view: Float32Array;
    if (this.stage === 0) {
      view = this.grads.subarray(unit.start, end);
    } else {
      const p = this.partition.pieces[tied.unit];
      const a = Math.max(p.flatStart, unit.start);
      const b = Math.min(p.flatEnd, end);
      if (b <= a) return; // both copies are split alike: the other side has nothing here either
      view = this.stage === 1 ? this.grads.subarray(a, b) : this.grads.subarray(p.shardOffset + a - p.flatStart, p.shardOffset + b - p.flatStart);
    }
    await tied.group.allReduce(view, { op: 'sum' });
  }
}

/** A float64 sum over a group: each value split into hi + lo fp32 parts (a sum of squares can exceed fp32's exact range). */
async function sumFloat64(value: number, group: ReduceGroup): Promise<number> {
  if (group.size === 1) return value;
  const hi = Math.fround(value);
  const pair = new Float32Array([hi, value - hi]);
  await group.allReduce(pair, { op: 'sum' });
  return pair[0] + pair[1];
}

/** Sum of squares of `values`, which hold flat range [start, end), leaving out `exclude` (sorted or not). */
function sumOfSquaresExcept(values: Float32Array, start: number, end: number, exclude: readonly Range[]): number {
  let s = sumOfSquares(values);
  for (const r of exclude) {
    const a = Math.max(r.start, start);
    const b = Math.min(r.end, end);
    if (b > a) s -= sumOfSquares(values.subarray(a - start, b - start));
  }
  return s;
}

/** A batch that counts nothing: the given one with every target masked, or one token. */
function maskedBatch(like: MicroBatch | undefined): MicroBatch {
  if (!like) return { tokens: new Int32Array(1), targets: new Int32Array([-1]), batch: 1 };
  return { tokens: like.tokens, targets: new Int32Array(like.targets.length).fill(-1), batch: like.batch };
}
