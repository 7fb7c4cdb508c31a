import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from './config.js';
import { initParams } from './init.js';
import { paramLayout } from './layout.js';
import type { UnitParams } from './model-params.js';
import { balanceBlocks, checkPipeline } from './pipeline-stage.js';
import { HostGradients } from './host-gradients.js';
import { GPTSegments } from './segments.js';
import { randomTokens, useBackend } from './testing/helpers.js';

const CONFIG: GPTConfig = { vocabSize: 40, contextLength: 8, layers: 4, heads: 2, dModel: 16, layerNormEps: 1e-5 };

describe('pipeline stages', () => {
  beforeAll(async () => useBackend('wasm'));

  it('balances blocks by parameter count, embedding on the first stage and the head on the last', () => {
    expect(balanceBlocks(CONFIG, 1, 'params')).toEqual([4]);
    expect(balanceBlocks(CONFIG, 2, 'params')).toEqual([2, 2]);
    // A large vocabulary weighs on the first stage (embedding) and the last (the head's copy): the middle takes the blocks.
    expect(balanceBlocks({ ...CONFIG, vocabSize: 4096 }, 3, 'params')).toEqual([0, 4, 0]);
    expect(balanceBlocks({ ...CONFIG, layers: 8 }, 4, 'params')).toEqual([2, 2, 2, 2]); // a small embedding: blocks dominate
  });

  it('balances blocks by compute by default: the head costs 2CV FLOPs per token, the embedding nothing', () => {
    const nano: GPTConfig = { vocabSize: 2048, contextLength: 128, layers: 4, heads: 4, dModel: 128, layerNormEps: 1e-5 };
    // a block 24C^2 + 4TC = 458,752; the head 2CV = 524,288 (1.14 blocks)
    expect(balanceBlocks(nano, 2)).toEqual([3, 1]);
    expect(balanceBlocks({ ...nano, layers: 12 }, 2)).toEqual([7, 5]);
    expect(balanceBlocks(nano, 4)).toEqual([1, 1, 2, 0]); // the slowest stage does 2 blocks either way
    expect(balanceBlocks(nano, 2, 'params')).toEqual([2, 2]);
    expect(checkPipeline(nano, { stages: 2, stage: 0 })).toEqual([3, 1]);
    expect(() => checkPipeline(CONFIG, { stages: 2, stage: 0, blocks: [1, 2] })).toThrow(/does not assign the model's 4 blocks/);
    expect(() => checkPipeline(CONFIG, { stages: 6, stage: 0 })).toThrow(/TRAINER_ERR_PP_TOO_DEEP|more than the model's 4 blocks/);
  });

  for (const split of [[2, 2], [1, 2, 1], [0, 4]]) {
    it(`stages ${split.join('+')} chained compute the single model's loss and gradients`, async () => {
      const global = initParams(CONFIG, 7);
      const B = 2;
      const tokens = randomTokens(B * 8, CONFIG.vocabSize, 3);
      const targets = randomTokens(B * 8, CONFIG.vocabSize, 4);
      const mb = { tokens, targets, batch: B };
      const P = split.length;
      const stages = Array.from({ length: P }, (_, s) => new GPTSegments(CONFIG, { pipeline: { stages: P, stage: s, blocks: split } }));
      const single = new GPTSegments(CONFIG);
      const before = tf.memory().numTensors;
      const run = async (models: GPTSegments[]) => {
        const params = models.map((m) => m.shardOf(global));
        const flats = models.map((m) => new Float32Array(m.totalSize));
        const grads = models.map((m, s) => HostGradients.forUnits(m.units, flats[s]));
        const acquire = (m: GPTSegments, s: number, units: number[]) => new Map<number, UnitParams>(units.map((u) => [u, m.unitParams(u, params[s].subarray(m.units[u].start, m.units[u].end))]));
        const saved: { release(): void }[][] = models.map(() => []);
        let x: tf.Tensor | null = null;
        let pending = { loss: Promise.resolve(NaN), count: 0 };
        for (const [s, m] of models.entries()) {
          for (let seg = 0; seg < m.segments.length; seg++) {
            const p = acquire(m, s, m.segments[seg].forwardUnits);
            const r = await m.forward(seg, p, x, mb, true);
            p.forEach((u) => u.dispose());
            x?.dispose();
            x = r.y;
            saved[s].push(r.saved);
            if (r.loss) pending = r.loss;
          }
        }
        let dy: tf.Tensor | null = null;
        for (let s = models.length - 1; s >= 0; s--) {
          const m = models[s];
          for (let seg = m.segments.length - 1; seg >= 0; seg--) {
            const p = acquire(m, s, m.segments[seg].backwardUnits);
            const dx = await m.backward(seg, p, saved[s][seg], dy, 1, grads[s]);
            p.forEach((u) => u.dispose());
            dy?.dispose();
            dy = dx;
          }
        }
        for (const g of grads) await HostGradients.settle(g);
        const loss = { loss: await pending.loss, count: pending.count };
        // Gather: each stage places its gradients; the tied copy's wte gradient joins the owner's.
        const full = new Float32Array(paramLayout(CONFIG).totalSize);
        models.forEach((m, s) => {
          const flat = flats[s];
          const placed = new Float32Array(full.length);
          m.placeInto(flat, placed, true);
          for (let i = 0; i < full.length; i++) full[i] += placed[i];
          const tied = m.tiedEmbedding;
          if (tied?.copyUnit) for (let i = tied.wte.start; i < tied.wte.end; i++) full[i - tied.wte.start] += flat[i];
        });
        return { loss, grads: full };
      };
      const a = await run([single]);
      const b = await run(stages);
      expect(tf.memory().numTensors).toBe(before);
      expect(b.loss).toEqual(a.loss);
      const scale = a.grads.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
      let maxDiff = 0;
      a.grads.forEach((g, i) => (maxDiff = Math.max(maxDiff, Math.abs(g - b.grads[i]))));
      expect(maxDiff).toBeLessThanOrEqual(1e-6 * scale);
      // The last stage's copy of the embedding unit starts equal to the first stage's.
      if (P > 1) {
        const last = stages[P - 1];
        const copy = last.shardOf(global).subarray(last.tiedEmbedding!.wte.start, last.tiedEmbedding!.wte.end);
        expect(Array.from(copy)).toEqual(Array.from(global.subarray(0, copy.length)));
      }
    });
  }
});
