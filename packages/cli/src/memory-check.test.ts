import { describe, expect, it } from 'vitest';
import { resolveModelConfig } from '@trainer/model';
import type { TrainJob } from '@trainer/launcher';
import { warnIfModelStateExceedsMemory } from './memory-check.js';

describe('the memory check before a launch', () => {
  const job = { model: resolveModelConfig('gpt2-124m'), backend: 'wasm', zero: 0 } as TrainJob;

  it('warns with the numbers when the predicted model state does not fit', () => {
    const warnings: string[] = [];
    expect(warnIfModelStateExceedsMemory(job, 4, false, (m) => warnings.push(m), 1024 ** 3)).toBe(true);
    expect(warnings[0]).toMatch(/predicted at [\d.]+ GiB each \([\d.]+ GiB in all\) but this machine has 1.00 GiB free/);
  });

  it('stays quiet when it fits, and a higher ZeRO stage needs less', () => {
    expect(warnIfModelStateExceedsMemory(job, 4, false, () => undefined, 64 * 1024 ** 3)).toBe(false);
    const needs = (zero: 0 | 3) => {
      let msg = '';
      warnIfModelStateExceedsMemory({ ...job, zero }, 4, false, (m) => (msg = m), 1);
      return Number(/\(([\d.]+) GiB in all\)/.exec(msg)![1]);
    };
    expect(needs(3)).toBeLessThan(needs(0) / 2);
  });
});
