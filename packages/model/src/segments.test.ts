import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GPT } from './gpt.js';
import { HostGradients } from './host-gradients.js';
import { initParams } from './init.js';
import type { UnitParams } from './model-params.js';
import { GPTSegments } from './segments.js';
import { randomTokens, TINY, useBackend, VARIANTS } from './testing/helpers.js';

/**
 * Driving the model segment by segment (the ZeRO-3 / pipeline / checkpointing path) must compute
 * what the whole-model call computes: the same loss bit for bit, and the same gradients up to the
 * order of fp32 additions (the embedding adds its rows straight into the wte gradient that the
 * head started, where the whole-model call sums them separately first).
 */
describe.each(VARIANTS.filter((v) => v.simd))('GPTSegments on $backend/$kind', ({ backend, kind }) => {
  beforeAll(async () => useBackend(backend));

  it('equals GPT.forwardBackward, with units uploaded one at a time and no tensor left behind', async () => {
    const params = initParams(TINY, 3);
    const B = 2;
    const T = TINY.contextLength;
    const tokens = randomTokens(B * T, TINY.vocabSize, 1);
    const targets = randomTokens(B * T, TINY.vocabSize, 2);
    targets[3] = -1; // a masked target
    const gpt = new GPT(TINY, { kernels: kind });
    gpt.setParams(params);
    const wholeGrads = new Float32Array(params.length);
    const whole = await gpt.forwardBackward(tokens, targets, B, wholeGrads, 0.5);
    gpt.dispose();

    const before = tf.memory().numTensors;
    const model = new GPTSegments(TINY, { kernels: kind });
    const flat = new Float32Array(params.length);
    const grads = HostGradients.forUnits(model.units, flat);
    const acquire = (units: number[]) => new Map<number, UnitParams>(units.map((u) => [u, model.unitParams(u, params.subarray(model.units[u].start, model.units[u].end))]));
    const release = (m: Map<number, UnitParams>) => m.forEach((p) => p.dispose());
    const saved = [];
    let x: tf.Tensor | null = null;
    let pending = { loss: Promise.resolve(NaN), count: 0 };
    const mb = { tokens, targets, batch: B };
    for (let s = 0; s < model.segments.length; s++) {
      const p = acquire(model.segments[s].forwardUnits);
      const r = await model.forward(s, p, x, mb, true);
      release(p);
      x?.dispose();
      x = r.y;
      saved.push(r.saved);
      if (r.loss) pending = r.loss;
    }
    let dy: tf.Tensor | null = null;
    for (let s = model.segments.length - 1; s >= 0; s--) {
      const p = acquire(model.segments[s].backwardUnits);
      const dx = await model.backward(s, p, saved[s], dy, 0.5, grads);
      release(p);
      dy?.dispose();
      dy = dx;
    }
    await HostGradients.settle(grads);
    expect(tf.memory().numTensors).toBe(before);
    expect({ loss: await pending.loss, count: pending.count }).toEqual(whole);
    const scale = wholeGrads.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
    let maxDiff = 0;
    flat.forEach((g, i) => (maxDiff = Math.max(maxDiff, Math.abs(g - wholeGrads[i]))));
    expect(maxDiff).toBeLessThanOrEqual(1e-6 * scale);
  });

  it('tiles the flat vector with its units: embedding, one per block, final', () => {
    const model = new GPTSegments(TINY, { kernels: kind });
    expect(model.units.map((u) => u.name)).toEqual(['embedding', 'h.0', 'h.1', 'final']);
    expect(model.units[0].start).toBe(0);
    model.units.slice(1).forEach((u, i) => expect(u.start).toBe(model.units[i].end));
    expect(model.units[model.units.length - 1].end).toBe(model.totalSize);
  });
});

describe('unitComputeCosts', () => {
  it.each(['host', 'tf'] as const)('predicts the bytes an uploaded unit really holds (%s kernels)', async (kind) => {
    await useBackend('wasm');
    const model = new GPTSegments(TINY, { kernels: kind });
    const params = initParams(TINY, 1);
    const costs = (await import('./segments.js')).unitComputeCosts(TINY, kind);
    model.units.forEach((u, i) => {
      const p = model.unitParams(i, params.subarray(u.start, u.end));
      expect(p.tensors.reduce((s, t) => s + 4 * t.size, 0)).toBe(costs[i].computeBytes);
      p.dispose();
    });
  });
});
