import { expect } from 'vitest';
import { planMemory, type ZeroStage } from '@trainer/engine';
import { resolveModelConfig } from '@trainer/model';

/** The model of the memory tests' runs (`--layers 2` on the tiny job: gpt-nano, 2 heads, d 32, vocabulary 300, context 32). */
export const PLANNED_CONFIG = resolveModelConfig('gpt-nano', { layers: 2, heads: 2, dModel: 32, vocabSize: 300, contextLength: 32 });

/** A run's layout, as the planner takes it (2 workers, global batch 4). */
export interface PlannedLayout {
  label: string;
  kernels: 'host' | 'tf';
  tp?: number;
  pp?: number;
  zero?: ZeroStage;
  microBatch: number;
  microBatches: number;
  activationCheckpointing?: boolean;
  precision?: 'fp32' | 'bf16' | 'fp16';
}

/**
 * `trainer estimate-memory`'s prediction for each rank's pipeline stage against the rank's
 * measured peak backend bytes in step 2 (the memory meter: distinct buffers, every allocation):
 * within 10%.
 */
export function expectPeakAsPlanned(metrics: readonly Record<string, unknown>[], l: PlannedLayout): void {
  const plan = planMemory({
    config: PLANNED_CONFIG, world: 2, tp: l.tp ?? 1, pp: l.pp ?? 1, zero: l.zero ?? 0, precision: l.precision ?? 'fp32', kernels: l.kernels,
    activationCheckpointing: l.activationCheckpointing ?? false, microBatch: l.microBatch, microBatches: l.microBatches, seqLen: PLANNED_CONFIG.contextLength,
    backend: 'wasm', simd: true,
  });
  const rows = metrics.filter((x) => x.step === 2 && typeof x.peak_tf_bytes === 'number') as Record<string, number>[];
  expect(rows.length, `${l.label}: step 2 of both ranks`).toBe(2);
  for (const m of rows) {
    const stage = l.pp ? Math.floor(m.rank / (2 / l.pp)) : 0;
    const predicted = plan.ranks[stage].device;
    const measured = m.peak_tf_bytes;
    expect(Math.abs(predicted - measured) / measured, `${l.label} rank ${m.rank}: predicted ${predicted}, measured ${measured} (${plan.ranks[stage].peakAt})`).toBeLessThanOrEqual(0.1);
  }
}
