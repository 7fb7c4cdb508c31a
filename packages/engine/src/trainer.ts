import { TrainerError } from '@trainer/errors';
import type { Range } from './adamw.js';
import type { Device, Precision } from './device/device.js';
import { clipFactor } from './grad-clip.js';
import { DEFAULT_GRADIENT_SYNC } from './gradient-sync.js';
import type { CollectiveGroup, Disposable, LossResult, MicroBatch, ReduceGroup, SegmentedModel } from './interfaces.js';
import { learningRateAt } from './lr-schedule.js';
import { DynamicLossScaler, type LossScalerOptions, type LossScalerState } from './precision/loss-scaler.js';
import { SequentialSchedule, type MicroBatchSchedule } from './schedules/micro-batch-schedule.js';
import { SegmentRunner } from './segment-runner.js';
import { countTargets, type StepResult, type TrainerOptions } from './trainer-options.js';
import { ZeroPartition } from './zero/partition.js';
import type { ZeroStage } from './zero/stage-plan.js';
import { ZeroStrategy } from './zero/zero-strategy.js';
import { DiLoCo, type DiLoCoOptions } from './outer/diloco.js';
import type { ExportedPiece, OuterStateReader, StateReader } from './zero/zero-state.js';

/**
 * One rank's training: a segmented model, its state on a Device, a ZeRO stage over the
 * data-parallel group, and a micro-batch schedule. A step is five phases:
 *
 *   1. forward/backward  every micro-batch of this rank, by the schedule (one after another, or
 *                        1F1B on a pipeline stage); gradients into the stage's sink
 *   2. reduce            gradients summed over the data-parallel group, as far as this rank needs
 *                        them (zero-strategy.ts)
 *   3. tied and norm     the tied embedding's two pipeline copies summed; the global gradient
 *                        norm (also fp16's overflow check) from every rank's own gradients
 *   4. clip and update   AdamW on this rank's optimizer ranges, gradients scaled by the clip
 *                        factor and 1 / loss scale
 *   5. redistribute      compute reads the new parameters (rounded, or all-gathered)
 *
 * The step is the same math for every stage, worker count and device: each micro-batch's
 * gradient is weighted by its share of the counted targets of the global batch (exact for masked
 * targets), reductions are sums, the clipping norm is over the whole gradient, AdamW is
 * element-wise. Mixed precision (bf16/fp16): parameters travel and compute in 16-bit values,
 * gradients are held and travel in 16 bits, the update is fp32 on the fp32 master; fp16 adds
 * dynamic loss scaling (precision/loss-scaler.ts).
 */
export interface TrainerConfig extends TrainerOptions {
  stage: ZeroStage;
  /** How parameters and gradients are held and communicated (default fp32). */
  precision?: Precision;
  /** fp16 only: the dynamic loss scaler's settings. */
  lossScaler?: Partial<LossScalerOptions>;
  /** Recompute blocks in backward instead of keeping their activations (SegmentRunner). */
  checkpointActivations?: boolean;
  /**
   * When the model is split further (tensor or pipeline parallel), the global gradient norm sums
   * every rank's unique elements: `group` spans all those ranks (usually the world), and this
   * rank leaves out `exclude` (ranges it holds as copies of another rank's: tensor-parallel
   * replicated parameters on all but the first tensor-parallel rank, the pipeline's second copy
   * of the tied embedding). Absent: the data-parallel group alone holds the whole model.
   */
  norm?: { group: ReduceGroup; exclude: readonly Range[] };
  /** How this rank runs its micro-batches (default: one after another; a pipeline stage: OneFOneBSchedule). */
  microBatchSchedule?: MicroBatchSchedule;
  /** A pipeline stage: its pipeline group, along which the last stage's loss is shared. */
  pipelineGroup?: ReduceGroup;
  /**
   * A tied parameter held by two pipeline stages (the embedding, used by the first stage's
   * lookup and the last stage's head): its gradient is summed over `group` (the two stages'
   * ranks) before every step. It is the first `length` elements of unit `unit`.
   */
  tied?: { group: ReduceGroup; unit: number; length: number };
  /**
   * Low-communication training (outer/diloco.ts): this trainer's group is one replica's
   * data-parallel group, and every `outer.every` steps the replicas average their progress over
   * `outer.group`.
   */
  outer?: DiLoCoOptions;
}

/** Bytes this rank holds for its model state, by kind, measured from its vectors and tensors. */
export interface ModelStateBytes {
  /** fp32 runs: the master weights of this rank's optimizer ranges (they are the working parameters). */
  params: number;
  /** 16-bit runs: the fp32 master weights (compute reads their rounding). */
  master: number;
  /** The compute copy on the backend (all units, or the peak of gathered units under stage 3). */
  paramsCompute: number;
  /** Gradients held at most: buffers being filled or reduced and the step's sums. */
  grads: number;
  /** AdamW's m and v. */
  optimizer: number;
  total: number;
}

export class Trainer<V, A extends Disposable = Disposable, P extends Disposable = Disposable> {
  readonly stage: ZeroStage;
  readonly precision: Precision;
  readonly partition: ZeroPartition;
  private readonly runner: SegmentRunner<A, P>;
  private readonly strategy: ZeroStrategy<V, P>;
  private readonly schedule: MicroBatchSchedule;
  private readonly scaler: DynamicLossScaler | null;
  private readonly scalar = new Float32Array(1);
  private readonly outer: DiLoCo<V> | null;
  /** Inner steps taken since the last outer sync (DiLoCo). */
  private unsynced = false;
  /** Idle share of the last step's schedule (the pipeline bubble; 0 without a pipeline). */
  bubble = 0;

  constructor(
    readonly model: SegmentedModel<A, P>,
    readonly device: Device<V>,
    readonly group: CollectiveGroup,
    private readonly options: TrainerConfig,
  ) {
    if (![0, 1, 2, 3].includes(options.stage)) {
      throw new TrainerError('TRAINER_ERR_ZERO_STAGE', `ZeRO stage ${String(options.stage)} does not exist`, { hint: 'use --zero 0, 1, 2 or 3' });
    }
    this.stage = options.stage;
    this.precision = options.precision ?? 'fp32';
    this.runner = new SegmentRunner(model, { checkpointActivations: options.checkpointActivations });
    this.partition = new ZeroPartition(model.units, group.size, group.rank);
    const { group: wire, ...sync } = { ...DEFAULT_GRADIENT_SYNC, ...options.gradientSync };
    this.strategy = new ZeroStrategy(this.stage, model, device, wire ?? group, this.partition, { precision: this.precision, adamw: options.adamw, ...sync });
    this.schedule = options.microBatchSchedule ?? new SequentialSchedule();
    this.scaler = this.precision === 'fp16' ? new DynamicLossScaler(options.lossScaler) : null;
    this.outer = options.outer ? new DiLoCo(device, this.strategy.state, options.outer) : null;
  }

  /**
   * Loads the initial parameters (`read('params', start, end)` over this rank's flat layout; each
   * rank reads only what it keeps) with fresh optimizer state. Call once before the first step.
   */
  async init(read: StateReader): Promise<void> {
    await this.strategy.load(read, false);
    this.outer?.anchor();
  }

  /** Restores parameters and optimizer state from a checkpoint of any layout (reading only this rank's ranges). */
  async importState(optimizerStep: number, read: StateReader, outer?: { read: OuterStateReader; resumeStep: number; pending: boolean }): Promise<void> {
    await this.strategy.load(read, true);
    this.strategy.state.optimizerStep = optimizerStep;
    if (!this.outer) return;
    // DiLoCo: the saved outer state, or (a checkpoint without one) the loaded parameters as the anchor.
    const flat = this.strategy.state.ranges.map((r, u) => ({ start: this.model.units[u].start + r.start, end: this.model.units[u].start + r.end }));
    if (outer) await this.outer.importState(outer.read, flat, outer.resumeStep, outer.pending);
    else this.outer.anchor();
  }

  /**
   * One optimizer step over this rank's micro-batches of the global batch for `step`; with
   * DiLoCo, every H-th step also syncs the replicas (`synced` in the result).
   */
  async step(step: number, microBatches: readonly MicroBatch[]): Promise<StepResult> {
    const outerWaitMs = (await this.landReplicas(step)) ? this.outer!.landWaitMs : undefined;
    const r = await this.innerStep(step, microBatches);
    this.unsynced = true;
    if (!this.outer?.due(step)) return outerWaitMs !== undefined ? { ...r, outerWaitMs } : r;
    await this.outer.sync(step);
    this.unsynced = false;
    // An overlapped sync leaves the parameters as they are until it lands.
    if (!this.outer.overlapping) await this.strategy.redistribute();
    return { ...r, synced: true, ...(outerWaitMs !== undefined ? { outerWaitMs } : {}) };
  }

  /**
   * DiLoCo with overlapped syncs: before step `step`, lands the average of the sync in flight when
   * it is due (step calls it; a caller may call it first to see the parameters on both sides).
   * Whether it landed.
   */
  async landReplicas(step: number): Promise<boolean> {
    if (!this.outer || !(await this.outer.landIfDue(step))) return false;
    await this.strategy.redistribute();
    return true;
  }

  /**
   * The run's end under DiLoCo (every H steps the trainer syncs by itself): lands what is in
   * flight, and averages the progress since the last sync if any step was taken since, so every
   * replica ends on the same parameters. A collective over the outer group.
   */
  async syncReplicas(): Promise<void> {
    if (!this.outer) return;
    if (this.unsynced) await this.outer.sync(-1, true);
    else await this.outer.settle();
    this.unsynced = false;
    await this.strategy.redistribute();
  }

  /** Whether step `step` ended a DiLoCo interval (false without DiLoCo). */
  syncsAfter(step: number): boolean {
    return this.outer?.due(step) ?? false;
  }

  private async innerStep(step: number, microBatches: readonly MicroBatch[]): Promise<StepResult> {
    const total = await this.countedTargets(step, microBatches);
    // fp16: the loss gradient is scaled up so small gradients survive; undone in fp32 by the update.
    const lossScale = this.scaler?.scale ?? 1;
    const lossSum = await this.forwardBackward(microBatches, total, lossScale); // 1
    const grads = await this.strategy.reduce(); // 2
    try {
      await this.sumTiedGradients(grads); // 3
      const loss = (await this.sumOverGroup(lossSum, this.options.pipelineGroup)) / total;
      const sumOfSquares = await this.globalSumOfSquares(grads);
      const lr = learningRateAt(step, this.options.schedule);
      if (this.scaler?.update(!Number.isFinite(sumOfSquares), step)) {
        return { step, loss, gradNorm: NaN, lr, tokens: total, lossScale, skipped: true };
      }
      const gradNorm = Math.sqrt(sumOfSquares) / lossScale;
      if (!Number.isFinite(gradNorm) || !Number.isFinite(loss)) {
        throw new TrainerError('TRAINER_ERR_NONFINITE', `step ${step}: loss ${loss}, gradient norm ${gradNorm}: training diverged`, {
          hint: 'lower --lr, raise warmup, or enable gradient clipping (--grad-clip 1)',
          details: { step, loss, gradNorm },
        });
      }
      this.strategy.state.update(grads.splice(0), lr, clipFactor(gradNorm, this.options.gradClip) / lossScale); // 4
      await this.strategy.redistribute(); // 5
      return { step, loss, gradNorm, lr, tokens: total, ...(this.scaler ? { lossScale, skipped: false } : {}) };
    } finally {
      for (const g of grads) this.device.dispose(g); // left over only by a skipped or failed step
    }
  }

  /** Targets counted in the step's global batch (every rank of the group sees the same sum). */
  private async countedTargets(step: number, microBatches: readonly MicroBatch[]): Promise<number> {
    const total = await this.sumOverGroup(microBatches.reduce((s, mb) => s + countTargets(mb.targets), 0));
    if (total === 0) {
      throw new TrainerError('TRAINER_ERR_EMPTY_BATCH', `step ${step}: no target in the global batch is counted (all masked)`, {
        hint: 'check the loss mask of the training data: every example needs at least one completion token',
      });
    }
    return total;
  }

  /** Phase 1: this rank's passes; returns its sum of loss x counted targets. */
  private async forwardBackward(microBatches: readonly MicroBatch[], total: number, lossScale: number): Promise<number> {
    // Gradients are pre-scaled by c_m / C, so every reduction is a plain sum.
    const scales = microBatches.map((mb) => (countTargets(mb.targets) / total) * lossScale);
    this.strategy.grads.beginStep?.(microBatches.length); // a unit is final after this many backward passes
    try {
      const r = await this.schedule.train(this.runner, microBatches, scales, this.strategy.params, this.strategy.grads);
      this.bubble = r.wallMs > 0 ? r.idleMs / r.wallMs : 0;
      return r.lossSum;
    } catch (err) {
      this.strategy.grads.reset();
      throw err;
    }
  }

  /** The tied embedding's gradient summed with the other pipeline stage's copy (each rank: its own range of it). */
  private async sumTiedGradients(grads: V[]): Promise<void> {
    const tied = this.options.tied;
    if (!tied || tied.group.size === 1) return;
    // The tied parameter is [0, length) of the unit; this rank holds [range.start, range.end) of
    // it. Both stages' copies are split alike, so both sides reduce the same range.
    const range = this.strategy.state.ranges[tied.unit];
    const end = Math.min(range.end, tied.length);
    if (end <= range.start) return;
    grads[tied.unit] = await this.device.allReduceRange(grads[tied.unit], 0, end - range.start, tied.group, 'fp32');
  }

  /**
   * The squared norm of the whole gradient, every element counted once over all ranks: each
   * rank sums its optimizer ranges (under stage 0 every data-parallel rank holds all of them:
   * the first one counts), leaving out `norm.exclude`. Still loss-scaled; non-finite when any
   * rank's gradients overflowed (fp16).
   */
  private async globalSumOfSquares(grads: V[]): Promise<number> {
    const norm = this.options.norm;
    const replicated = this.strategy.plan.optimizer === 'replicated';
    const counts = !replicated || this.group.rank === 0 || !norm;
    const parts = [];
    if (counts) {
      for (const [u, g] of grads.entries()) {
        const unit = this.model.units[u];
        const range = this.strategy.state.ranges[u];
        for (const r of includedRanges(unit.start + range.start, unit.start + range.end, norm?.exclude ?? [])) {
          parts.push(this.device.sumOfSquares(g, r.start - unit.start - range.start, r.end - unit.start - range.start));
        }
      }
    }
    const local = await this.device.total(parts);
    if (replicated && !norm) return local; // identical on every rank: nothing to add up
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
    if (this.strategy.plan.params === 'gathered' && this.group.size > 1) {
      this.scalar[0] = runs;
      await this.group.allReduce(this.scalar, { op: 'max' });
      runs = this.scalar[0];
    }
    const padded = Array.from({ length: runs }, (_, i) => mine[i] ?? maskedBatch(mine[0]));
    const { lossSum, count } = await this.schedule.evaluate(this.runner, padded, this.strategy.params);
    const both = new Float32Array([lossSum, count]);
    if (this.group.size > 1) await this.group.allReduce(both, { op: 'sum' });
    const pp = this.options.pipelineGroup;
    if (pp && pp.size > 1) await pp.allReduce(both, { op: 'sum' });
    return { loss: both[1] > 0 ? both[0] / both[1] : NaN, count: both[1] };
  }

  /** Unit u's working parameters in full (a collective when the optimizer is partitioned: every rank calls it). */
  fullUnit(u: number): Promise<Float32Array> {
    return this.strategy.fullUnit(u);
  }

  /** This rank's working parameters in full, as one vector (small models and tests; a collective like fullUnit). */
  async fullParams(): Promise<Float32Array> {
    const flat = new Float32Array(this.model.totalSize);
    for (const [u, unit] of this.model.units.entries()) flat.set(await this.fullUnit(u), unit.start);
    return flat;
  }

  /** This rank's share of the training state, for a sharded checkpoint (host copies). */
  async exportPieces(): Promise<{ optimizerStep: number; precision: Precision; pieces: ExportedPiece[] }> {
    const exported = await this.strategy.state.exportPieces(this.precision);
    if (!this.outer) return exported;
    // DiLoCo: the outer state beside each piece; anchor and momentum from replica 0 only (the same on every replica).
    const outer = await this.outer.exportPieces(this.strategy.state.exportLocations(), this.outer.o.group.rank === 0);
    return { ...exported, pieces: exported.pieces.map((p, i) => ({ ...p, ...outer[i] })) };
  }


  /** The flat ranges exportPieces returns, without reading them. */
  exportRanges(): { flatStart: number; flatEnd: number }[] {
    return this.strategy.state.exportRanges();
  }

  /** fp16's loss-scale state (for checkpoints), or null. */
  lossScalerState(): LossScalerState | null {
    return this.scaler?.state() ?? null;
  }

  loadLossScalerState(state: LossScalerState): void {
    this.scaler?.loadState(state);
  }

  /** Model-state bytes held by this rank, measured from its vectors and tensors. */
  modelStateBytes(): ModelStateBytes {
    const { master, optimizer: inner } = this.strategy.state.bytes();
    const optimizer = inner + (this.outer?.bytes() ?? 0); // DiLoCo's anchor and momentum with AdamW's moments
    const params = this.precision === 'fp32' ? master : 0;
    const master16 = this.precision === 'fp32' ? 0 : master;
    const paramsCompute = this.strategy.computeBytes;
    const grads = this.strategy.grads.heldBytes;
    return { params, master: master16, paramsCompute, grads, optimizer, total: params + master16 + paramsCompute + grads + optimizer };
  }

  dispose(): void {
    this.outer?.dispose();
    this.strategy.dispose();
    this.device.release();
  }

  /** Sum over the data-parallel group, then (if given) over a second group. */
  private async sumOverGroup(value: number, then?: ReduceGroup): Promise<number> {
    this.scalar[0] = value;
    if (this.group.size > 1) await this.group.allReduce(this.scalar, { op: 'sum' });
    if (then && then.size > 1) await then.allReduce(this.scalar, { op: 'sum' });
    return this.scalar[0];
  }
}

/** [start, end) without the parts inside `exclude` (sorted or not), as ordered ranges. */
function includedRanges(start: number, end: number, exclude: readonly Range[]): Range[] {
  const cuts = exclude.filter((r) => r.end > start && r.start < end).sort((a, b) => a.start - b.start);
  const out: Range[] = [];
  let pos = start;
  for (const c of cuts) {
    if (c.start > pos) out.push({ start: pos, end: Math.min(c.start, end) });
    pos = Math.max(pos, c.end);
  }
  if (pos < end) out.push({ start: pos, end });
  return out;
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
  return { tokens: like.tokens, targets: new Int32Array(like.targets.length).fill(-1), batch: like.batch, ...(like.segments ? { segments: like.segments } : {}) };
}
