import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { benchForwardBackward } from './bench/forward-backward.js';

describe('kernel profile of a forward/backward step', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('gives every kernel of the step to the layer phase that launched it, without counting op scopes twice', async () => {
    const opts = {
      model: 'gpt-nano', overrides: { layers: 1, heads: 2, dModel: 32, vocabSize: 64, contextLength: 16 }, batch: 2, steps: 1, warmup: 1, kernels: 'tf' as const,
    };
    await benchForwardBackward(opts); // caches the kernels' constants (kept tensors), so that the profiled run's delta is its own
    const r = await benchForwardBackward({ ...opts, kernelProfile: true });
    const kp = r.kernelProfile!;
    expect(kp.timer).toBe('wall'); // cpu: each kernel's wall time (timestamp queries are WebGPU's)
    expect(kp.kernels).toBeGreaterThan(100);
    // The phases partition the kernels and their time.
    expect(kp.phases.reduce((a, p) => a + p.kernels, 0)).toBe(kp.kernels);
    expect(kp.phases.reduce((a, p) => a + p.ms, 0)).toBeCloseTo(kp.ms, 6);
    expect(kp.phases.reduce((a, p) => a + p.share, 0)).toBeCloseTo(1, 9);
    const phase = (name: string) => kp.phases.find((p) => p.phase === name);
    for (const name of ['attn.core.forward', 'attn.core.backward', 'ln.forward', 'ln.backward', 'mlp.c_fc.backward', 'head.backward']) {
      expect(phase(name)?.kernels, name).toBeGreaterThan(0);
    }
    // Registered kernels only (fusedMatMul's op scope wraps its _FusedMatMul kernel).
    expect(kp.top.map((k) => k.name)).toContain('BatchMatMul');
    expect(kp.top.some((k) => k.name.endsWith('__op'))).toBe(false);
    expect(r.tensorDelta).toBe(0);
  });
});
