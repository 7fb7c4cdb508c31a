import { TrainerError } from '@trainer/errors';

/**
 * Dynamic loss scaling for fp16 (Micikevicius et al. 2018; torch.cuda.amp.GradScaler's rule).
 * The loss gradient is multiplied by `scale` so small gradients survive fp16's narrow range;
 * gradients are divided by it again in fp32 before the update. If any rank's gradients
 * overflowed (inf/NaN), the step is skipped and the scale halved; after `growthInterval` good
 * steps in a row it doubles. Overflowing again and again at the minimum scale means the model
 * itself produces non-finite gradients: a clear error, not an endless run of skipped steps.
 */
export interface LossScalerOptions {
  /** PyTorch's default 2^16. */
  initialScale: number;
  growthFactor: number;
  backoffFactor: number;
  /** Good steps before the scale grows (PyTorch: 2000, DeepSpeed: 1000). */
  growthInterval: number;
  minScale: number;
  /** Consecutive overflows at the minimum scale before giving up. */
  maxSkipsAtMinimum: number;
}

export const DEFAULT_LOSS_SCALER: LossScalerOptions = {
  initialScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 1000, minScale: 1, maxSkipsAtMinimum: 10,
};

export interface LossScalerState {
  scale: number;
  goodSteps: number;
  skipsAtMinimum: number;
}

export class DynamicLossScaler {
  private readonly opts: LossScalerOptions;
  scale: number;
  goodSteps = 0;
  skipsAtMinimum = 0;

  constructor(opts: Partial<LossScalerOptions> = {}) {
    this.opts = { ...DEFAULT_LOSS_SCALER, ...opts };
    this.scale = this.opts.initialScale;
  }

  /** After the overflow check of a step: true if the step must be skipped. */
  update(overflow: boolean, step: number): boolean {
    if (!overflow) {
      this.skipsAtMinimum = 0;
      if (++this.goodSteps >= this.opts.growthInterval) {
        this.scale *= this.opts.growthFactor;
        this.goodSteps = 0;
      }
      return false;
    }
    this.goodSteps = 0;
    if (this.scale <= this.opts.minScale) {
      if (++this.skipsAtMinimum >= this.opts.maxSkipsAtMinimum) {
        throw new TrainerError('TRAINER_ERR_LOSS_SCALE', `step ${step}: fp16 gradients overflowed ${this.skipsAtMinimum} steps in a row at the minimum loss scale ${this.opts.minScale}`, {
          hint: 'the model produces non-finite gradients: lower --lr, enable --grad-clip, or train in bf16 or fp32',
          details: { step, scale: this.scale },
        });
      }
    }
    this.scale = Math.max(this.opts.minScale, this.scale * this.opts.backoffFactor);
    return true;
  }

  state(): LossScalerState {
    return { scale: this.scale, goodSteps: this.goodSteps, skipsAtMinimum: this.skipsAtMinimum };
  }

  loadState(s: LossScalerState): void {
    this.scale = s.scale;
    this.goodSteps = s.goodSteps;
    this.skipsAtMinimum = s.skipsAtMinimum;
  }
}
