import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from './config.js';
import { setSimdKernelsEnabled } from './host/simd.js';
import { GPT } from './gpt.js';
import { initParams } from './init.js';
import { paramLayout } from './layout.js';
import { referenceLlamaLossAndGrads } from './testing/reference-llama.js';
import { VARIANTS, maxAbs, perturbedParams, randomTokens, relError, useBackend } from './testing/helpers.js';

/** A tiny Llama: 4 query heads of size 4 sharing 2 KV heads, SwiGLU 24, untied head. */
const LLAMA_TINY: GPTConfig = { vocabSize: 32, contextLength: 8, layers: 2, heads: 4, dModel: 16, layerNormEps: 1e-5, family: 'llama', kvHeads: 2, ffnHidden: 24, ropeTheta: 10000, tiedHead: false };


for (const { backend, kind: kernels, simd } of VARIANTS) {
  describe(`Llama explicit backward on ${backend}, ${kernels} kernels${kernels === 'host' && backend === 'wasm' ? (simd ? ' (SIMD)' : ' (JS loops)') : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
      setSimdKernelsEnabled(simd);
    });
    afterAll(() => setSimdKernelsEnabled(true));

    for (const config of [LLAMA_TINY, { ...LLAMA_TINY, tiedHead: true, kvHeads: 1, ropeTheta: 500000 }]) {
      it(`matches tf.grads of the reference Llama (every parameter, 1e-4 relative; ${config.tiedHead ? 'tied head, MQA' : 'untied head, GQA'})`, async () => {
        const flat = perturbedParams(config, 3);
        const B = 2;
        for (const T of [config.contextLength, 5]) {
          const tokens = randomTokens(B * T, config.vocabSize, 10 + T);
          const targets = randomTokens(B * T, config.vocabSize, 20 + T);
          targets[1] = -1;
          const ref = referenceLlamaLossAndGrads(config, flat, tokens, targets, B);
          const model = new GPT(config, { kernels });
          model.setParams(flat);
          const grads = new Float32Array(model.layout.totalSize);
          const { loss, count } = await model.forwardBackward(tokens, targets, B, grads);
          model.dispose();
          expect(count).toBe(B * T - 1);
          expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
          for (const e of paramLayout(config).entries) {
            const ours = grads.subarray(e.offset, e.offset + e.size);
            const theirs = ref.grads.subarray(e.offset, e.offset + e.size);
            expect(maxAbs(theirs), `${e.name} has a gradient`).toBeGreaterThan(0);
            expect(relError(ours, theirs), `${e.name} (T=${T})`).toBeLessThan(1e-4);
          }
        }
      });
    }

    it('leaks no tensors over repeated steps', async () => {
      const model = new GPT(LLAMA_TINY, { kernels });
      model.setParams(initParams(LLAMA_TINY, 1));
      const tokens = randomTokens(16, LLAMA_TINY.vocabSize, 1);
      const grads = new Float32Array(model.layout.totalSize);
      await model.forwardBackward(tokens, tokens, 2, grads);
      await model.lastLogits(tokens, 2);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        await model.forwardBackward(tokens, tokens, 2, grads);
        await model.loss(tokens, tokens, 2);
        await model.lastLogits(tokens, 2);
        model.setParams(initParams(LLAMA_TINY, i));
      }
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  });
}
