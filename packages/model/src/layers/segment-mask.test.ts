import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from '../config.js';
import { GPT } from '../gpt.js';
import { setSimdKernelsEnabled } from '../host/simd.js';
import { paramLayout } from '../layout.js';
import { TINY, VARIANTS, perturbedParams, randomArray, randomTokens, relError, useBackend } from '../testing/helpers.js';
import { makeLayerSet } from './layer-set.js';
import { PackedRows } from './segment-mask.js';

/**
 * Packed rows: the attention kernels with segment ids against tf.grads of a plain masked
 * reference, and whole models (GPT learned positions, Llama RoPE) on packed rows against the same
 * sequences one per row: the same loss and gradients.
 */
const LLAMA_TINY: GPTConfig = { vocabSize: 32, contextLength: 8, layers: 2, heads: 4, dModel: 16, layerNormEps: 1e-5, family: 'llama', kvHeads: 2, ffnHidden: 24, ropeTheta: 10000, tiedHead: false };

/** softmax(Q K^T / sqrt(hs) + mask) V with the mask from PackedRows.sees, plain tf ops (differentiable). */
function referenceAttention(qkv: tf.Tensor, heads: number, packed: PackedRows): tf.Tensor {
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const hs = C / heads;
  const mask = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < T; j++) mask[(b * T + t) * T + j] = packed.sees(b, t, j) ? 0 : -1e9;
  const split = (i: number): tf.Tensor => tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * C], [B, T, C]), [B, T, heads, hs]), [0, 2, 1, 3]);
  const s = tf.add(tf.div(tf.matMul(split(0), split(1), false, true), Math.sqrt(hs)), tf.tensor4d(mask, [B, 1, T, T]));
  return tf.reshape(tf.transpose(tf.matMul(tf.softmax(s), split(2)), [0, 2, 1, 3]), [B, T, C]);
}

describe('PackedRows', () => {
  it('restarts positions per segment and refuses a segment that resumes', () => {
    const p = new PackedRows(Int32Array.from([0, 0, 1, 1, 1, 2, 5, 5, 5, 5, 5, 5]), 2);
    expect([...p.positions]).toEqual([0, 1, 0, 1, 2, 0, 0, 1, 2, 3, 4, 5]);
    expect(p.sees(0, 4, 2) && !p.sees(0, 4, 1) && !p.sees(0, 2, 3)).toBe(true);
    expect(() => new PackedRows(Int32Array.from([0, 1, 0, 0]), 1)).toThrow(/TRAINER_ERR_MODEL_INPUT|not contiguous/);
  });
});

for (const { backend, kind, simd } of VARIANTS) {
  describe(`packed rows on ${backend}, ${kind} kernels${kind === 'host' && backend === 'wasm' ? (simd ? ' (SIMD)' : ' (JS loops)') : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
      setSimdKernelsEnabled(simd);
    });
    afterAll(() => setSimdKernelsEnabled(true));

    it('attention with segments matches tf.grads of a masked reference (output and dqkv, 1e-5)', () => {
      const heads = 2;
      for (const { T, hs } of [{ T: 8, hs: 8 }, { T: 6, hs: 4 }]) {
        const B = 2;
        const C = heads * hs;
        const segs = T === 8 ? [0, 0, 0, 1, 1, 1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4] : [0, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1];
        const packed = new PackedRows(Int32Array.from(segs), B);
        const attention = makeLayerSet(kind, heads, 1e-5).attention;
        const [warm, warmDy] = [tf.zeros([B, T, 3 * C]), tf.zeros([B, T, C])];
        const w = attention.forward(packed, warm, true); // caches the kernels' constants (the scale)
        tf.dispose([w.y, attention.backward(packed, w.saved, warmDy).dx, warm, warmDy]);
        const before = tf.memory().numTensors;
        const qkv = tf.tensor3d(randomArray(B * T * 3 * C, 5 + T), [B, T, 3 * C]);
        const dy = tf.tensor3d(randomArray(B * T * C, 7 + T), [B, T, C]);
        const f = attention.forward(packed, qkv, true);
        const { dx } = attention.backward(packed, f.saved, dy);
        const ref = tf.tidy(() => referenceAttention(qkv, heads, packed));
        const refGrad = tf.tidy(() => tf.grads((x: tf.Tensor) => tf.sum(tf.mul(referenceAttention(x, heads, packed), dy)))([qkv])[0]);
        expect(relError(f.y.dataSync(), ref.dataSync()), `y, T=${T}`).toBeLessThan(1e-5);
        expect(relError(dx.dataSync(), refGrad.dataSync()), `dqkv, T=${T}`).toBeLessThan(1e-5);
        tf.dispose([qkv, dy, f.y, dx, ref, refGrad]);
        expect(tf.memory().numTensors, 'no tensor leaks').toBe(before);
      }
    });

    for (const config of [TINY, LLAMA_TINY]) {
      it(`${config.family ?? 'gpt2'}: packed rows give the loss and gradients of one sequence per row (1e-5)`, async () => {
        const T = config.contextLength;
        const lengths = [5, 3, 4]; // packed: [5 | 3] and [4 | pad 4]
        const seqs = lengths.map((n, i) => randomTokens(n, config.vocabSize, 30 + i));
        const tgts = lengths.map((n, i) => {
          const t = randomTokens(n, config.vocabSize, 40 + i);
          t[0] = -1; // a masked target inside a sequence
          return t;
        });
        const rows = (placement: number[][]): { tokens: Int32Array; targets: Int32Array; segments: Int32Array; B: number } => {
          const B = placement.length;
          const tokens = new Int32Array(B * T);
          const targets = new Int32Array(B * T).fill(-1);
          const segments = new Int32Array(B * T);
          placement.forEach((row, b) => {
            let at = b * T;
            row.forEach((s, k) => {
              tokens.set(seqs[s], at);
              targets.set(tgts[s], at);
              segments.fill(k, at, at + lengths[s]);
              at += lengths[s];
            });
            segments.fill(row.length, at, (b + 1) * T);
          });
          return { tokens, targets, segments, B };
        };
        const flat = perturbedParams(config, 9);
        const run = async (r: ReturnType<typeof rows>, packed: boolean): Promise<{ loss: number; count: number; grads: Float32Array }> => {
          const model = new GPT(config, { kernels: kind });
          model.setParams(flat);
          const grads = new Float32Array(model.layout.totalSize);
          const { loss, count } = await model.forwardBackward(r.tokens, r.targets, r.B, grads, 1, packed ? r.segments : undefined);
          const evalLoss = await model.loss(r.tokens, r.targets, r.B, packed ? r.segments : undefined);
          model.dispose();
          expect(evalLoss.loss).toBeCloseTo(loss, 5);
          return { loss, count, grads };
        };
        const one = await run(rows([[0], [1], [2]]), false);
        const packed = await run(rows([[0, 1], [2]]), true);
        const before = tf.memory().numTensors;
        await run(rows([[0, 1], [2]]), true);
        expect(tf.memory().numTensors, 'packed steps leak no tensors').toBe(before);
        expect(packed.count).toBe(one.count);
        expect(Math.abs(packed.loss - one.loss) / one.loss).toBeLessThan(1e-6);
        for (const e of paramLayout(config).entries) {
          expect(relError(packed.grads.subarray(e.offset, e.offset + e.size), one.grads.subarray(e.offset, e.offset + e.size)), e.name).toBeLessThan(1e-5);
        }
        // without the segment ids the second sequence would attend to the first (and see other positions): other gradients
        const crossed = await run(rows([[0, 1], [2]]), false);
        expect(relError(crossed.grads, one.grads)).toBeGreaterThan(1e-3);
      });
    }
  });
}
