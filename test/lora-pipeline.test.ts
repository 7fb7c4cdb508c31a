import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readPeftAdapter } from '@trainer/checkpoint';
import { loraWorkspace, summary } from './helpers/lora-run.js';
import { killAllStarted } from './helpers/processes.js';

afterEach(() => killAllStarted());

/**
 * LoRA fine-tuning on 2 pipeline stages x 2 data-parallel ranks with ZeRO-3 (multi-process,
 * from the Hugging Face Llama folder of helpers/lora-run.ts) follows 1 worker: each stage trains
 * its blocks' adapters, and the PEFT adapter assembled from both stages is the 1-worker one.
 */
const { prepare, finetune } = loraWorkspace();

beforeAll(prepare, 120_000);

describe('LoRA on a pipeline (multi-process)', () => {
  it('pp 2 x dp 2 with ZeRO-3 follows 1 worker: losses 2e-5 relative, adapters 1e-4 absolute', async () => {
    const one = await finetune('lora-1', ['--nodes', '1']);
    const pp = await finetune('lora-pp2', ['--nodes', '4', '--pp', '2', '--zero', '3']);
    const ref = summary(one);
    summary(pp).losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]) / ref.losses[i], `step ${i}`).toBeLessThan(2e-5));
    const refAdapter = await readPeftAdapter(join(one, 'adapter'));
    const adapter = await readPeftAdapter(join(pp, 'adapter'));
    expect([...adapter.tensors.keys()].sort()).toEqual([...refAdapter.tensors.keys()].sort());
    for (const [name, t] of refAdapter.tensors) {
      const mine = adapter.tensors.get(name)!.values;
      let diff = 0;
      for (let i = 0; i < t.values.length; i++) diff = Math.max(diff, Math.abs(mine[i] - t.values[i]));
      expect(diff, name).toBeLessThan(1e-4); // absolute, as the other parallel tests compare parameters
    }
  }, 120_000);
});
