import { describe, expect, it } from 'vitest';
import { resolveModelConfig } from '@trainer/model';
import type { TrainJob } from '@trainer/launcher';
import { checkJobMemory, planInput, workerBytes } from './memory-check.js';
import { planMemory } from '@trainer/engine';

describe('the memory check before a launch', () => {
  const job = {
    model: resolveModelConfig('gpt2-124m'), backend: 'wasm', kernels: 'auto', zero: 0, tp: 1, pp: 1, precision: 'fp32',
    activationCheckpointing: false, microBatch: 2, globalBatch: 8, seqLen: 128,
  } as TrainJob;
  const need = (zero: 0 | 3) => workerBytes(planMemory(planInput({ ...job, zero }, 4, false)), false);

  it('warns with the numbers when the predicted peak exceeds what the machine has', () => {
    const warnings: string[] = [];
    checkJobMemory(job, 4, false, { bytes: 2 ** 30, what: 'this machine', explicit: false }, (m) => warnings.push(m));
    expect(warnings[0]).toMatch(/ZeRO 0, tp 1, pp 1 on 4 workers needs [\d.]+ GiB per worker at its peak \(pipeline stage 0: model state [\d.]+ GiB, activations [\d.]+ MiB/);
    expect(warnings[0]).toMatch(/but this machine allows 1.00 GiB/);
  });

  it('refuses a run over --max-memory before it starts, naming the layouts that fit', () => {
    const limit = Math.round((need(0) + need(3)) / 2);
    let err: unknown;
    try {
      checkJobMemory(job, 4, false, { bytes: limit, what: '--max-memory', explicit: true }, () => undefined);
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).toBe('TRAINER_ERR_MEMORY_PLAN');
    expect((err as { hint?: string }).hint).toMatch(/layouts of 4 workers that fit: --zero 3/);
    // ZeRO-3 fits the same limit: no warning, no refusal.
    const warnings: string[] = [];
    checkJobMemory({ ...job, zero: 3 }, 4, false, { bytes: limit, what: '--max-memory', explicit: true }, (m) => warnings.push(m));
    expect(warnings).toEqual([]);
    expect(need(3)).toBeLessThan(need(0) * 0.6);
  });
});
