import type { AdamWConfig } from './adamw.js';
import type { GradientSyncOptions } from './gradient-sync.js';
import type { LrSchedule } from './lr-schedule.js';

/** What every trainer takes: schedule, optimizer, clipping, gradient synchronization. */
export interface TrainerOptions {
  schedule: LrSchedule;
  adamw: AdamWConfig;
  /** Clip gradients to this global L2 norm; 0 disables clipping. */
  gradClip: number;
  gradientSync?: Partial<GradientSyncOptions>;
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
  /** fp16: the loss scale used this step, and whether the step was skipped for an overflow. */
  lossScale?: number;
  skipped?: boolean;
  /** DiLoCo: the replicas synced after this step (loss and norm are this replica's). */
  synced?: boolean;
  /** DiLoCo with overlapped syncs: how long this sync waited for the previous one's all-reduce (its exposed wire time), ms. */
  outerWaitMs?: number;
}

/** Targets that count in the loss (masked ones are negative). */
export function countTargets(targets: Int32Array): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) n++;
  return n;
}
