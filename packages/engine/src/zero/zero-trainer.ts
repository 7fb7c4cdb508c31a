import { TrainerError } from '@trainer/errors';
import type { Range } from '../adamw.js';
import { clipFactor } from '../grad-clip.js';
import { DEFAULT_GRADIENT_SYNC } from '../gradient-sync.js';
import type { CollectiveGroup, Disposable, LossResult, MicroBatch, ReduceGroup, SegmentedModel } from '../interfaces.js';
import { learningRateAt } from '../lr-schedule.js';
import { DynamicLossScaler, type LossScalerOptions, type LossScalerState } from '../precision/loss-scaler.js';
import type { Precision, VectorStore } from '../precision/vector-store.js';
import { SegmentRunner, type ParamSource } from '../segment-runner.js';
import { runPipelineForward, runPipelineSchedule, type PipelineStage } from '../pipeline/pipeline-executor.js';
import { countTargets, type StepResult, type TrainerOptions } from '../trainer-options.js';
import { FullGradSink, ShardedGradSink } from './grad-sinks.js';
import { GatheredParams, ResidentParams } from './param-sources.js';
import { ZeroPartition } from './partition.js';
import { allReduceRange, allReduceStore, reduceScatterStoreByUnit } from './store-reductions.js';
import { ZeroState } from './zero-state.js';

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
 *
 * Mixed precision (bf16 / fp16): the parameters compute reads ("working", what is gathered and
 * uploaded) and the gradients are held and communicated in 16 bits; an fp32 master copy of the
 * parameters (partitioned with the optimizer state under stages 1-3, as the ZeRO paper's K = 12)
 * receives the update, and the working copy is its rounding. All sums and the update are fp32.
 * fp16 adds dynamic loss scaling (precision/loss-scaler.ts).
 */
export interface ZeroOptions<A = unknown> extends TrainerOptions {
  stage: ZeroStage;
  /** How parameters and gradients are held and communicated (default fp32). */
  precision?: Precision;
  /** fp16 only: the dynamic loss scaler's settings. */
  lossScaler?: Partial<LossScalerOptions>;
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
  /** Working parameters in the run's precision (full, or own pieces under stage 3). */
  params: number;
  /** The fp32 master copy (16-bit precisions only; full under stage 0, own pieces otherwise). */
  master: number;
  /** The compute copy uploaded to the backend (all units, or the peak of gathered units under stage 3). */
  paramsCompute: number;
  /** Gradient buffers (full, or own pieces, plus the peak of fp32 unit buckets). */
  grads: number;
  /** AdamW's m and v. */
  optimizer: number;
  total: number;
}

export class ZeroTrainer<A extends Disposable, P extends Disposable> {
  readonly stage: ZeroStage;
  readonly precision: Precision;
  readonly partition: ZeroPartition;
  private readonly runner: SegmentRunner<A, P>;
  /** Working parameters, fp32 master, gradients and AdamW state this rank keeps (zero-state.ts). */
  private readonly state: ZeroState;
  private readonly working: VectorStore;
  private readonly grads: VectorStore;
  private readonly scaler: DynamicLossScaler | null;
  private readonly source: ResidentParams<P> | GatheredParams<P>;
  private readonly sink: FullGradSink | ShardedGradSink;
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
    this.precision = options.precision ?? 'fp32';
    const probe = options.backendBytes;
    this.runner = new SegmentRunner(model, {
      sample: probe ? () => (this.peakBackend = Math.max(this.peakBackend, probe())) : undefined,
      checkpointActivations: options.checkpointActivations,
    });
    this.partition = new ZeroPartition(model.units, group.size, group.rank);
    this.state = new ZeroState(model.totalSize, this.partition, this.stage, this.precision, options.adamw, model.decayRanges, initialParams);
    this.working = this.state.working;
    this.grads = this.state.grads;
    this.scaler = this.precision === 'fp16' ? new DynamicLossScaler(options.lossScaler) : null;
    if (this.stage === 3) {
      this.source = new GatheredParams(model, group, this.partition, this.working, this.precision);
    } else {
      const resident = new ResidentParams(model);
      resident.refresh(this.working);
      this.source = resident;
    }
    this.sink = this.stage >= 2
      ? new ShardedGradSink(model, group, this.partition, this.grads, this.precision)
      : new FullGradSink(model, this.grads);
  }

  /** One optimizer step over this rank's micro-batches of the global batch for `step`. */
  async step(step: number, microBatches: readonly MicroBatch[]): Promise<StepResult> {
    const total = await this.sumOverGroup(microBatches.reduce((s, mb) => s + countTargets(mb.targets), 0));
    if (total === 0) {
      throw new TrainerError('TRAINER_ERR_EMPTY_BATCH', `step ${step}: no target in the global batch is counted (all masked)`, {
        hint: 'check the loss mask of the training data: every example needs at least one completion token',
      });
    }
    this.grads.fill0();
    // fp16: the loss gradient is scaled up so small gradients survive; undone in fp32 below.
    const lossScale = this.scaler?.scale ?? 1;
    let lossSum = 0;
    const pipeline = this.options.pipeline;
    if (pipeline) {
      const scales = microBatches.map((mb) => (countTargets(mb.targets) / total) * lossScale);
      const r = await runPipelineSchedule(this.runner, pipeline, microBatches, scales, this.source, this.sink);
      lossSum = r.lossSum;
      this.bubble = r.wallMs > 0 ? r.idleMs / r.wallMs : 0;
    } else {
      for (const mb of microBatches) {
        const count = countTargets(mb.targets);
        if (count === 0) continue;
        const r = await this.runner.forwardBackward(mb, (count / total) * lossScale, this.source, this.sink);
        lossSum += r.loss * r.count;
      }
    }
    // Gradients are pre-scaled by c_m / C, so every reduction is a plain sum.
    if (this.stage === 0) await allReduceStore(this.grads, this.group, this.precision, (this.options.gradientSync ?? DEFAULT_GRADIENT_SYNC).bucketBytes);
    if (this.stage === 1) await reduceScatterStoreByUnit(this.grads, this.model.units, this.partition, this.group, this.precision);
    await this.sumTiedGradients();
    // Only the last pipeline stage computes the loss: share it along the pipeline.
    const loss = (await this.sumOverGroup(lossSum, pipeline?.group)) / total;
    if (this.scaler) {
      const overflow = await this.anyOverflow();
      if (this.scaler.update(overflow, step)) {
        return { step, loss, gradNorm: NaN, lr: learningRateAt(step, this.options.schedule), tokens: total, lossScale, skipped: true };
      }
    }
    // Global norm: of the full gradient (stage 0 holds it), or of every rank's pieces summed.
    const gradNorm = Math.sqrt(await this.globalSumOfSquares()) / lossScale;
    if (!Number.isFinite(gradNorm) || !Number.isFinite(loss)) {
      throw new TrainerError('TRAINER_ERR_NONFINITE', `step ${step}: loss ${loss}, gradient norm ${gradNorm}: training diverged`, {
        hint: 'lower --lr, raise warmup, or enable gradient clipping (--grad-clip 1)',
        details: { step, loss, gradNorm },
      });
    }
    const lr = learningRateAt(step, this.options.schedule);
    await this.update(clipFactor(gradNorm, this.options.gradClip) / lossScale, lr);
    return { step, loss, gradNorm, lr, tokens: total, ...(this.scaler ? { lossScale, skipped: false } : {}) };
  }

  /** AdamW on the master, with gradients multiplied by `factor` (clipping and loss-scale undo). */
  private async update(factor: number, lr: number): Promise<void> {
    this.state.applyUpdate(factor, lr);
    if (this.stage === 3) return;
    if (this.stage >= 1) {
      // Stages 1-2: every rank contributes its updated pieces; all get the whole vector back.
      for (const [u, unit] of this.model.units.entries()) {
        const p = this.partition.pieces[u];
        const full = await this.group.allGather(this.working.read(p.flatStart, p.flatEnd), unit.end - unit.start, { codec: this.precision });
        this.working.write(unit.start, full);
      }
    }
    (this.source as ResidentParams<P>).refresh(this.working);
  }

  /** Whether any rank's gradients overflowed (fp16): a max over every rank holding gradients. */
  private async anyOverflow(): Promise<boolean> {
    const mine = this.state.ownGradientRanges().some(([a, b]) => this.grads.hasNonFinite(a, b));
    this.scalar[0] = mine ? 1 : 0;
    const group = this.options.norm?.group ?? this.group;
    if (group.size > 1) await group.allReduce(this.scalar, { op: 'max' });
    return this.scalar[0] > 0;
  }

  /**
   * The squared norm of the whole gradient: every element counted once over all ranks. Under
   * stage 0 every data-parallel rank holds all of it (the first one counts), otherwise each its
   * own pieces; elements in `norm.exclude` are another rank's to count. Still loss-scaled.
   */
  private async globalSumOfSquares(): Promise<number> {
    const norm = this.options.norm;
    let local = 0;
    if (this.stage > 0 || this.group.rank === 0 || !norm) {
      for (const [a, b, flat] of this.state.ownGradientRanges()) {
        local += this.grads.sumOfSquares(a, b);
        for (const r of norm?.exclude ?? []) {
          const x = Math.max(r.start, flat);
          const y = Math.min(r.end, flat + b - a);
          if (y > x) local -= this.grads.sumOfSquares(a + x - flat, a + y - flat);
        }
      }
    }
    if (this.stage === 0 && !norm) return local; // identical on every rank: nothing to add up
    return sumFloat64(local, norm?.group ?? this.group);
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

  /** This rank's fp32 parameters in full (a collective under stage 3: every rank must call it). */
  async fullParams(): Promise<Float32Array> {
    if (this.stage < 3) return new Float32Array(this.working.read(0, this.model.totalSize));
    const flat = new Float32Array(this.model.totalSize);
    for (const [u, unit] of this.model.units.entries()) {
      const p = this.partition.pieces[u];
      const mine = this.working.read(p.shardOffset, p.shardOffset + p.flatEnd - p.flatStart);
      flat.set(await this.group.allGather(mine, unit.end - unit.start, { codec: this.precision }), unit.start);
    }
    return flat;
  }

  /** This rank's share of the training state, for a sharded checkpoint (ZeroState.exportPieces). */
  exportPieces(): ReturnType<ZeroState['exportPieces']> {
    return this.state.exportPieces();
  }

  /** Restores the training state from any layout (ZeroState.importState), then re-uploads. */
  async importState(optimizerStep: number, read: Parameters<ZeroState['importState']>[1]): Promise<void> {
    await this.state.importState(optimizerStep, read);
    if (this.source instanceof ResidentParams) this.source.refresh(this.working);
  }

  /** fp16's loss-scale state (for checkpoints), or null. */
  lossScalerState(): LossScalerState | null {
    return this.scaler?.state() ?? null;
  }

  loadLossScalerState(state: LossScalerState): void {
    this.scaler?.loadState(state);
  }

  /** The most bytes the backend held at a segment boundary since the last call (0 without a probe). */
  takePeakBackendBytes(): number {
    const peak = this.peakBackend;
    this.peakBackend = 0;
    return peak;
  }

  /** Model-state bytes held by this rank, measured from its buffers. */
  modelStateBytes(): ModelStateBytes {
    const { params, master, grads: held, optimizer } = this.state.bytes();
    const paramsCompute = this.source instanceof ResidentParams ? this.source.residentBytes : this.source.peakResidentBytes + this.source.peakGatheredBytes;
    const grads = held + this.sink.peakBucketBytes;
    return { params, master, paramsCompute, grads, optimizer, total: params + master + paramsCompute + grads + optimizer };
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
    if (this.stage === 0) return allReduceRange(this.grads, unit.start, end, tied.group);
    const p = this.partition.pieces[tied.unit];
    const a = Math.max(p.flatStart, unit.start);
    const b = Math.min(p.flatEnd, end);
    if (b <= a) return; // both copies are split alike: the other side has nothing here either
    const at = this.stage === 1 ? a : p.shardOffset + a - p.flatStart;
    await allReduceRange(this.grads, at, at + b - a, tied.group);
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

/** A batch that counts nothing: the given one with every target masked, or one token. */
function maskedBatch(like: MicroBatch | undefined): MicroBatch {
  if (!like) return { tokens: new Int32Array(1), targets: new Int32Array([-1]), batch: 1 };
  return { tokens: like.tokens, targets: new Int32Array(like.targets.length).fill(-1), batch: like.batch };
}
