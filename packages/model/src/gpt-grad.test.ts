import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setSimdKernelsEnabled } from './host/simd.js';
import { GPT } from './gpt.js';
import { initParams } from './init.js';
import { paramLayout } from './layout.js';
import { referenceLossAndGrads } from './testing/reference-gpt.js';
import { TINY, VARIANTS, maxAbs, perturbedParams, randomTokens, relError, useBackend } from './testing/helpers.js';

const perturbed = (seed: number): Float32Array => perturbedParams(TINY, seed);

for (const { backend, kind: kernels, simd } of VARIANTS) {
  {
    describe(`GPT explicit backward on ${backend}, ${kernels} kernels${kernels === 'host' && backend === 'wasm' ? (simd ? ' (SIMD)' : ' (JS loops)') : ''}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
        setSimdKernelsEnabled(simd);
      });
      afterAll(() => setSimdKernelsEnabled(true));

      it('matches tf.grads of the reference GPT (every parameter, 1e-4 relative)', async () => {
        const flat = perturbed(3);
        const B = 2;
        for (const T of [TINY.contextLength, 5]) {
          const tokens = randomTokens(B * T, TINY.vocabSize, 10 + T);
          const targets = randomTokens(B * T, TINY.vocabSize, 20 + T);
          targets[1] = -1; // one masked position
          const ref = referenceLossAndGrads(TINY, flat, tokens, targets, B);
          const model = new GPT(TINY, { kernels });
          model.setParams(flat);
          const grads = new Float32Array(model.layout.totalSize);
          const { loss, count } = await model.forwardBackward(tokens, targets, B, grads);
          model.dispose();
          expect(count).toBe(B * T - 1);
          expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
          for (const e of paramLayout(TINY).entries) {
            const ours = grads.subarray(e.offset, e.offset + e.size);
            const theirs = ref.grads.subarray(e.offset, e.offset + e.size);
            if (e.name === 'wpe.weight') {
              // rows >= T get no gradient; compare the used rows
              const used = T * TINY.dModel;
              expect(maxAbs(ours.subarray(used))).toBe(0);
            }
            expect(maxAbs(theirs), `${e.name} has a gradient`).toBeGreaterThan(0);
            expect(relError(ours, theirs), `${e.name} (T=${T})`).toBeLessThan(1e-4);
          }
        }
      });

      it('matches central finite differences of its own loss on sampled coordinates', async () => {
        const flat = perturbed(5);
        const B = 2;
        const T = 6;
        const tokens = randomTokens(B * T, TINY.vocabSize, 31);
        const targets = randomTokens(B * T, TINY.vocabSize, 32);
        const model = new GPT(TINY, { kernels });
        model.setParams(flat);
        const grads = new Float32Array(model.layout.totalSize);
        (await model.forwardBackward(tokens, targets, B, grads));
        const layout = paramLayout(TINY);
        const h = 1e-2;
        const scale = maxAbs(grads);
        for (const e of layout.entries) {
          // two coordinates per tensor (for wpe: inside the used rows)
          const limit = e.name === 'wpe.weight' ? T * TINY.dModel : e.size;
          for (const k of [0, Math.floor(limit / 2) + 1]) {
            const i = e.offset + Math.min(k, limit - 1);
            const saved = flat[i];
            flat[i] = saved + h;
            model.setParams(flat);
            const up = (await model.loss(tokens, targets, B)).loss;
            flat[i] = saved - h;
            model.setParams(flat);
            const down = (await model.loss(tokens, targets, B)).loss;
            flat[i] = saved;
            const numeric = (up - down) / (2 * h);
            expect(Math.abs(numeric - grads[i]), `${e.name}[${i - e.offset}]`).toBeLessThan(1e-3 * scale + 2e-2 * Math.abs(grads[i]));
          }
        }
        model.dispose();
      });

      it('leaks no tensors over many forwardBackward / loss / lastLogits / generate calls', async () => {
        const model = new GPT(TINY, { kernels });
        model.setParams(initParams(TINY, 1));
        const tokens = randomTokens(16, TINY.vocabSize, 1);
        const grads = new Float32Array(model.layout.totalSize);
        // Warm-up: kernel setup may allocate once, and the tf kernels cache constants (a causal mask per length).
        (await model.forwardBackward(tokens, tokens, 2, grads));
        (await model.generate([1, 2, 3], { maxNewTokens: 10, temperature: 1, topK: 5, seed: 1 }));
        const before = tf.memory().numTensors;
        for (let i = 0; i < 5; i++) {
          (await model.forwardBackward(tokens, tokens, 2, grads));
          (await model.loss(tokens, tokens, 2));
          (await model.lastLogits(tokens, 2));
          model.setParams(initParams(TINY, i));
        }
        (await model.generate([1, 2, 3], { maxNewTokens: 10, temperature: 1, topK: 5, seed: 1 }));
        expect(tf.memory().numTensors).toBe(before);
        model.dispose();
        expect(tf.memory().numTensors).toBe(before - model.layout.entries.length - (kernels === 'host' ? 1 + 4 * TINY.layers : 0));
      });
    });
  }
}
