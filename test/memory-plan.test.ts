import { afterEach, describe, expect, it } from 'vitest';
import { planMemory, type ZeroStage } from '@trainer/engine';
import { resolveModelConfig } from '@trainer/model';
import { trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * The memory planner against measurement: small runs of every layout (ZeRO 0-3, tensor and
 * pipeline parallel, activation checkpointing, bf16 and fp16, both kernel sets) on 2 workers, each rank's
 * peak backend bytes in a training step (the memory meter: distinct buffers, every allocation)
 * against `trainer estimate-memory`'s prediction for that rank's pipeline stage: within 10%.
 */
const CONFIG = resolveModelConfig('gpt-nano', { layers: 2, heads: 2, dModel: 32, vocabSize: 300, contextLength: 32 });
const JOB = ['--layers', '2', '--global-batch', '4', '--steps', '3', '--eval-batches', '0', '--sample-tokens', '0'];

interface Layout {
  label: string;
  args: string[];
  kernels: 'host' | 'tf';
  tp?: number;
  pp?: number;
  zero?: ZeroStage;
  microBatch: number;
  microBatches: number;
  activationCheckpointing?: boolean;
  precision?: 'fp32' | 'bf16' | 'fp16';
}

const LAYOUTS: Layout[] = [
  ...([0, 1, 2] as ZeroStage[]).map((zero): Layout => ({ label: `tf ZeRO ${zero}`, args: ['--zero', String(zero)], kernels: 'tf', zero, microBatch: 2, microBatches: 1 })),
  { label: 'tf ZeRO 3, 2 micro-batches', args: ['--zero', '3', '--micro-batch', '1'], kernels: 'tf', zero: 3, microBatch: 1, microBatches: 2 },
  { label: 'tf tp 2', args: ['--tp', '2'], kernels: 'tf', tp: 2, microBatch: 4, microBatches: 1 },
  { label: 'tf pp 2', args: ['--pp', '2', '--micro-batches', '2'], kernels: 'tf', pp: 2, microBatch: 2, microBatches: 2 },
  { label: 'tf activation checkpointing', args: ['--activation-checkpointing'], kernels: 'tf', activationCheckpointing: true, microBatch: 2, microBatches: 1 },
  { label: 'tf bf16', args: ['--precision', 'bf16'], kernels: 'tf', precision: 'bf16', microBatch: 2, microBatches: 1 },
  { label: 'tf bf16 ZeRO 2', args: ['--precision', 'bf16', '--zero', '2'], kernels: 'tf', precision: 'bf16', zero: 2, microBatch: 2, microBatches: 1 },
  { label: 'tf fp16 ZeRO 3', args: ['--precision', 'fp16', '--zero', '3'], kernels: 'tf', precision: 'fp16', zero: 3, microBatch: 2, microBatches: 1 },
  { label: 'host ZeRO 0', args: ['--zero', '0'], kernels: 'host', zero: 0, microBatch: 2, microBatches: 1 },
  { label: 'host ZeRO 3', args: ['--zero', '3'], kernels: 'host', zero: 3, microBatch: 2, microBatches: 1 },
  { label: 'host tp 2', args: ['--tp', '2'], kernels: 'host', tp: 2, microBatch: 4, microBatches: 1 },
  { label: 'host pp 2', args: ['--pp', '2', '--micro-batches', '2'], kernels: 'host', pp: 2, microBatch: 2, microBatches: 2 },
  { label: 'host activation checkpointing', args: ['--activation-checkpointing'], kernels: 'host', activationCheckpointing: true, microBatch: 2, microBatches: 1 },
];

describe('memory planner (multi-process)', () => {
  it('predicts every layout\'s peak backend bytes per rank within 10% of the measured peak', async () => {
    const ws = tinyWorkspace();
    for (const l of LAYOUTS) {
      const run = await trainedRun(ws, l.label.replace(/[ ,]+/g, '-'), 2, [...JOB, '--kernels', l.kernels, ...l.args]);
      const plan = planMemory({
        config: CONFIG, world: 2, tp: l.tp ?? 1, pp: l.pp ?? 1, zero: l.zero ?? 0, precision: l.precision ?? 'fp32', kernels: l.kernels,
        activationCheckpointing: l.activationCheckpointing ?? false, microBatch: l.microBatch, microBatches: l.microBatches, seqLen: CONFIG.contextLength,
        backend: 'wasm', simd: true,
      });
      for (const m of run.metrics.filter((x) => x.step === 2 && typeof x.peak_tf_bytes === 'number') as Record<string, number>[]) {
        // Ranks are numbered tensor-parallel fastest, then data-parallel, then pipeline stage.
        const stage = l.pp ? Math.floor(m.rank / (2 / l.pp)) : 0;
        const predicted = plan.ranks[stage].device;
        const measured = m.peak_tf_bytes;
        expect(Math.abs(predicted - measured) / measured, `${l.label} rank ${m.rank}: predicted ${predicted}, measured ${measured} (${plan.ranks[stage].peakAt})`).toBeLessThanOrEqual(0.1);
      }
    }
  }, 600_000);
});
