import { TrainerError } from '@trainer/errors';
import { AdamW, type AdamWConfig, type Range } from './adamw.js';
import { clipFactor, scaleInPlace, sumOfSquares } from './grad-clip.js';
import { allReduceGradients, DEFAULT_GRADIENT_SYNC, type GradientSyncOptions } from './gradient-sync.js';
import type { LossResult, MicroBatch, ReduceGroup, TrainableModel } from './interfaces.js';
import { learningRateAt, type LrSchedule } from './lr-schedule.js';

/**
 * Data-parallel training step (PyTorch DDP semantics) on a model with a flat parameter vector.
 *
 * Every rank holds the full fp32 parameters and AdamW state. One optimizer step over a global
 * batch of G sequences, split into `dpSize` rank slices of `micro` micro-batches each:
 *
 *   C        = sum over ranks and micro-batches of counted targets         (all-reduce, 1 float)
 *   g_rank   = sum_m (c_m / C) * grad(mean loss of micro-batch m)          (local accumulation)
 *   g        = sum_rank g_rank = grad(mean loss over the global batch)     (bucketed all-reduce)
 *   g        <- g * min(1, maxNorm / ||g||)                                (clip by global norm)
 *   params   <- AdamW(params, g, lr(step))
 *
 * Weighting by target counts makes the result independent of the number of workers and of the
 * micro-batch size even when targets are masked (fine-tuning); for unmasked pretraining it is
 * the usual 1/(micro * dpSize) averaging.
 */
export interface TrainerOptions {
  schedule: LrSchedule;
  adamw: AdamWConfig;
  /** Clip gradients to this global L2 norm; 0 disables clipping. */
  gradClip: number;
  gradientSync?: GradientSyncOptions;
}

export interface StepResult {
  step: number;
  /** Mean training loss over the global batch. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  /** Counted targets in the global batch. */
  tokens: number;
}

export class DataParallelTrainer {
  readonly model: TrainableModel;
  readonly group: ReduceGroup;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly optimizer: AdamW;
  private readonly options: TrainerOptions;
  private readonly sync: GradientSyncOptions;
  private readonly scalar = new Float32Array(1);

  constructor(model: TrainableModel, group: ReduceGroup, initialParams: Float32Array, options: TrainerOptions) {
    const n = model.layout.totalSize;
    if (initialParams.length !== n) {
      throw new TrainerError('TRAINER_ERR_PARAM_SIZE', `initial parameters have ${initialParams.length} elements, the model needs ${n}`);
    }
    this.model = model;
    this.group = group;
    this.options = options;
    this.sync = options.gradientSync ?? DEFAULT_GRADIENT_SYNC;
    this.params = new Float32Array(initialParams);
    this.grads = new Float32Array(n);
    this.optimizer = new AdamW(options.adamw, { start: 0, end: n }, weightDecayRanges(model));
    model.setParams(this.params);
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
    for (const mb of microBatches) {
      const count = countTargets(mb.targets);
      if (count === 0) continue;
      const r = this.model.forwardBackward(mb.tokens, mb.targets, mb.batch, this.grads, count / total);
      lossSum += r.loss * r.count;
    }
    // Gradients are pre-scaled by c_m / C, so the group reduction is a plain sum.
    await allReduceGradients(this.grads, this.group, 'sum', this.sync);
    const loss = (await this.sumOverGroup(lossSum)) / total;

    const gradNorm = Math.sqrt(sumOfSquares(this.grads));
    if (!Number.isFinite(gradNorm) || !Number.isFinite(loss)) {
      throw new TrainerError('TRAINER_ERR_NONFINITE', `step ${step}: loss ${loss}, gradient norm ${gradNorm}: training diverged`, {
        hint: 'lower --lr, raise warmup, or enable gradient clipping (--grad-clip 1)',
        details: { step, loss, gradNorm },
      });
    }
    scaleInPlace(this.grads, clipFactor(gradNorm, this.options.gradClip));
    const lr = learningRateAt(step, this.options.schedule);
    this.optimizer.update(this.params, this.grads, lr);
    this.model.setParams(this.params);
    return { step, loss, gradNorm, lr, tokens: total };
  }

  /** Mean loss over this rank's share of the evaluation batches, combined over the group. */
  async evaluate(batches: Iterable<MicroBatch>): Promise<LossResult> {
    let lossSum = 0;
    let count = 0;
    for (const b of batches) {
      const r = this.model.loss(b.tokens, b.targets, b.batch);
      lossSum += r.loss * r.count;
      count += r.count;
    }
    const both = new Float32Array([lossSum, count]);
    if (this.group.size > 1) await this.group.allReduce(both, { op: 'sum' });
    return { loss: both[1] > 0 ? both[0] / both[1] : NaN, count: both[1] };
  }

  private async sumOverGroup(value: number): Promise<number> {
    this.scalar[0] = value;
    if (this.group.size > 1) await this.group.allReduce(this.scalar, { op: 'sum' });
    return this.scalar[0];
  }
}

export function countTargets(targets: Int32Array): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) n++;
  return n;
}

/** GPT-2/nanoGPT convention: decay matrices and embeddings (rank >= 2), not biases or LayerNorm. */
export function weightDecayRanges(model: TrainableModel): Range[] {
  return model.layout.entries.filter((e) => e.shape.length >= 2).map((e) => ({ start: e.offset, end: e.offset + e.size }));
}
