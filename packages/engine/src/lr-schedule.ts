/**
 * Learning-rate schedule: linear warmup, then cosine decay to a floor (GPT-3 / nanoGPT).
 *
 *   step < warmup:            lr * (step + 1) / warmup
 *   warmup <= step < decay:   minLr + 0.5 (1 + cos(pi * (step - warmup) / (decay - warmup))) (lr - minLr)
 *   step >= decay:            minLr
 *
 * A pure function of the step, so a resumed run continues the same schedule.
 */
export interface LrSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Floor of the cosine decay (nanoGPT uses lr / 10). */
  minLr: number;
  /** Steps of linear warmup. */
  warmupSteps: number;
  /** Step at which the cosine reaches minLr (usually the total number of steps). */
  decaySteps: number;
}

export function learningRateAt(step: number, s: LrSchedule): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (step >= s.decaySteps) return s.minLr;
  const progress = (step - s.warmupSteps) / Math.max(1, s.decaySteps - s.warmupSteps);
  return s.minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (s.lr - s.minLr);
}
