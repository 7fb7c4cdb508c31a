import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeLayerSet } from './layer-set.js';
import { LoraLinear, type LoraLinearParams } from './lora-linear.js';
import { hostTranspose } from './linear.js';
import { randomArray, relError, useBackend } from '../testing/helpers.js';

/** The plain reference: y = x W + b + s (x A) B with default autograd (tf.grads). */
function reference(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, a: tf.Tensor, b: tf.Tensor, s: number): tf.Tensor {
  const C = x.shape[x.shape.length - 1]!;
  const x2 = tf.reshape(x, [-1, C]) as tf.Tensor2D;
  const y = tf.add(tf.add(tf.matMul(x2, w as tf.Tensor2D), bias), tf.mul(tf.matMul(tf.matMul(x2, a as tf.Tensor2D), b as tf.Tensor2D), s));
  return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[1]!]);
}

const values = (g: unknown): Float32Array => (g instanceof Float32Array ? g : ((g as tf.Tensor).dataSync() as Float32Array));

for (const kind of ['host', 'tf'] as const) {
  describe(`LoraLinear (${kind} kernels)`, () => {
    beforeAll(async () => useBackend('wasm'));
    const [B, T, IN, OUT, R] = [2, 3, 8, 6, 4];

    it('matches tf.grads of the plain formula: dX, dA, dB; no gradient for the frozen W', () => {
      const layers = makeLayerSet(kind, 2, 1e-5);
      const layer = new LoraLinear(layers.linear, kind === 'host');
      const x = tf.tensor(randomArray(B * T * IN, 1), [B, T, IN]);
      const dy = tf.tensor(randomArray(B * T * OUT, 2), [B, T, OUT]);
      const w = tf.tensor(randomArray(IN * OUT, 3), [IN, OUT]);
      const bias = tf.tensor(randomArray(OUT, 4), [OUT]);
      const a = tf.tensor(randomArray(IN * R, 5), [IN, R]);
      const b = tf.tensor(randomArray(R * OUT, 6), [R, OUT]); // non-zero, so dA is tested
      const scale = 16 / R;
      const p: LoraLinearParams = { weight: w, bias, frozen: true, lora: { a, b, scale } };
      if (kind === 'host') p.weightT = hostTranspose(w);
      const f = layer.forward(p, x);
      const yRef = reference(x, w, bias, a, b, scale);
      expect(relError(f.y.dataSync(), yRef.dataSync())).toBeLessThan(1e-6);
      const r = layer.backward(p, f.saved, dy);
      const [gx, ga, gb] = tf.grads((xx: tf.Tensor, aa: tf.Tensor, bb: tf.Tensor) => reference(xx, w, bias, aa, bb, scale))([x, a, b], dy);
      expect(Object.keys(r.dParams).sort()).toEqual(['lora_A', 'lora_B']);
      expect(relError(r.dx.dataSync(), gx.dataSync())).toBeLessThan(1e-5);
      expect(relError(values(r.dParams.lora_A), ga.dataSync())).toBeLessThan(1e-5);
      expect(relError(values(r.dParams.lora_B), gb.dataSync())).toBeLessThan(1e-5);
      tf.dispose([x, dy, w, bias, a, b, f.y, yRef, r.dx, gx, ga, gb, p.weightT!]);
      for (const g of Object.values(r.dParams)) if (!(g instanceof Float32Array)) g.dispose();
    });

    it('an untargeted frozen linear returns dX = dY W^T only; a zero B leaves y = x W + b', () => {
      const layers = makeLayerSet(kind, 2, 1e-5);
      const layer = new LoraLinear(layers.linear, kind === 'host');
      const x = tf.tensor(randomArray(B * T * IN, 7), [B, T, IN]);
      const dy = tf.tensor(randomArray(B * T * OUT, 8), [B, T, OUT]);
      const w = tf.tensor(randomArray(IN * OUT, 9), [IN, OUT]);
      const bias = tf.zeros([OUT]);
      const frozen = layer.forward({ weight: w, bias, frozen: true }, x);
      const plain = layers.linear.forward({ weight: w, bias }, x, false);
      expect(relError(frozen.y.dataSync(), plain.y.dataSync())).toBeLessThan(1e-6);
      const r = layer.backward({ weight: w, bias, frozen: true }, frozen.saved, dy);
      expect(Object.keys(r.dParams)).toEqual([]);
      const [gx] = tf.grads((xx: tf.Tensor) => reference(xx, w, bias, tf.zeros([IN, 1]), tf.zeros([1, OUT]), 1))([x], dy);
      expect(relError(r.dx.dataSync(), gx.dataSync())).toBeLessThan(1e-5);
      const zeroB = { a: tf.tensor(randomArray(IN * R, 10), [IN, R]), b: tf.zeros([R, OUT]), scale: 2 };
      const adapted = layer.forward({ weight: w, bias, frozen: true, lora: zeroB }, x, false);
      expect(relError(adapted.y.dataSync(), plain.y.dataSync())).toBe(0);
      tf.dispose([x, dy, w, bias, frozen.y, plain.y, r.dx, gx, zeroB.a, zeroB.b, adapted.y]);
    });

    it('leaks no tensors over repeated forward/backward (and forward without backward)', () => {
      const layers = makeLayerSet(kind, 2, 1e-5);
      const layer = new LoraLinear(layers.linear, kind === 'host');
      const keep = [tf.tensor(randomArray(B * T * IN, 1), [B, T, IN]), tf.tensor(randomArray(B * T * OUT, 2), [B, T, OUT]), tf.tensor(randomArray(IN * OUT, 3), [IN, OUT]), tf.zeros([OUT]), tf.tensor(randomArray(IN * R, 5), [IN, R]), tf.zeros([R, OUT])];
      const [x, dy, w, bias, a, b] = keep;
      const p: LoraLinearParams = { weight: w, bias, frozen: true, lora: { a, b, scale: 1 } };
      const run = (): void => {
        const f = layer.forward(p, x);
        const r = layer.backward(p, f.saved, dy);
        r.dx.dispose();
        f.y.dispose();
        for (const g of Object.values(r.dParams)) if (!(g instanceof Float32Array)) g.dispose();
        const g = layer.forward(p, x);
        g.saved.release();
        g.y.dispose();
      };
      run();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) run();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose(keep);
    });
  });
}

describe('a frozen output head (LoRA) computes dx only', () => {
  beforeAll(async () => useBackend('wasm'));
  for (const kind of ['host', 'tf'] as const) {
    it(`${kind} kernels: the same dx as the trained head, no dwte, no leaks`, async () => {
      const head = makeLayerSet(kind, 2, 1e-5).head;
      const [N, C, V] = [8, 16, 12];
      const x = tf.tensor(randomArray(N * C, 21), [2, 4, C]);
      const wte = tf.tensor(randomArray(V * C, 22), [V, C]);
      const targets = Int32Array.from({ length: N }, (_, i) => (i === 3 ? -1 : (i * 5) % V));
      const run = async (frozen: boolean) => {
        const params = { wte, wteT: kind === 'host' ? tf.transpose(wte) : undefined, frozen };
        const f = head.forward(params, x, targets);
        await f.loss;
        const r = head.backward(params, f.saved, 0.5);
        params.wteT?.dispose();
        return r;
      };
      const trained = await run(false);
      const before = tf.memory().numTensors;
      const frozen = await run(true);
      expect(Object.keys(frozen.dParams)).toEqual([]);
      expect(Array.from(frozen.dx.dataSync())).toEqual(Array.from(trained.dx.dataSync()));
      frozen.dx.dispose();
      expect(tf.memory().numTensors).toBe(before);
      trained.dx.dispose();
      for (const g of Object.values(trained.dParams)) if (!(g instanceof Float32Array)) g.dispose();
      tf.dispose([x, wte]);
    });
  }
});
