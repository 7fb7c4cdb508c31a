import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeLayerSet } from './layer-set.js';
import { LoraLinear, type LoraLinearParams } from './lora-linear.js';
import { hostTranspose } from './linear.js';
import { randomArray, relError, useBackend } from '../testing/helpers.js';
import { hashString } from '../prng.js';
import { loraDropoutMask, type LoraDropoutSpec } from '../lora/lora-dropout.js';

/**
 * The dropout mask from its definition (lora-dropout.ts), element by element: u = the fmix32 chain
 * over (seed lo, seed hi, step, hashString(name), global row, position, global feature), dropped
 * when u < floor(p 2^32), kept ones scaled by 1 / (1 - p).
 */
function maskByDefinition(d: LoraDropoutSpec, rows: number, features: number): Float32Array {
  const fmix = (h: number): number => {
    h = (h ^ (h >>> 16)) >>> 0;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    return (h ^ (h >>> 16)) >>> 0;
  };
  const out = new Float32Array(rows * features);
  for (let n = 0; n < rows; n++) {
    for (let j = 0; j < features; j++) {
      const words = [d.seed % 2 ** 32, Math.floor(d.seed / 2 ** 32), d.step, hashString(d.name), d.firstRow + Math.floor(n / d.seqLen), n % d.seqLen, d.firstFeature + j];
      const u = words.reduce((h, v) => fmix((h ^ v) >>> 0), 0x9e3779b9);
      out[n * features + j] = u < Math.floor(d.p * 2 ** 32) ? 0 : 1 / (1 - d.p);
    }
  }
  return out;
}

/** The plain masked reference: y = x W + b + s ((x * M) A) B. */
function maskedReference(x: tf.Tensor, m: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, a: tf.Tensor, b: tf.Tensor, s: number): tf.Tensor {
  const C = x.shape[x.shape.length - 1]!;
  const x2 = tf.reshape(x, [-1, C]) as tf.Tensor2D;
  const xm = tf.mul(x2, m) as tf.Tensor2D;
  const y = tf.add(tf.add(tf.matMul(x2, w as tf.Tensor2D), bias), tf.mul(tf.matMul(tf.matMul(xm, a as tf.Tensor2D), b as tf.Tensor2D), s));
  return tf.reshape(y, [...x.shape.slice(0, -1), w.shape[1]!]);
}

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

    const DROP: LoraDropoutSpec = { p: 0.25, seed: 2 ** 33 + 7, step: 3, name: 'h.1.attn.q_proj', firstRow: 5, seqLen: T, firstFeature: 16 };

    it('dropout: forward and backward equal the plain masked formula and its tf.grads (mask built from the hash definition)', () => {
      const layers = makeLayerSet(kind, 2, 1e-5);
      const layer = new LoraLinear(layers.linear, kind === 'host');
      const x = tf.tensor(randomArray(B * T * IN, 31), [B, T, IN]);
      const dy = tf.tensor(randomArray(B * T * OUT, 32), [B, T, OUT]);
      const w = tf.tensor(randomArray(IN * OUT, 33), [IN, OUT]);
      const bias = tf.tensor(randomArray(OUT, 34), [OUT]);
      const a = tf.tensor(randomArray(IN * R, 35), [IN, R]);
      const b = tf.tensor(randomArray(R * OUT, 36), [R, OUT]);
      const maskValues = maskByDefinition(DROP, B * T, IN);
      expect(Array.from(loraDropoutMask(DROP, B * T, IN))).toEqual(Array.from(maskValues));
      expect(maskValues.some((v) => v === 0)).toBe(true);
      const m = tf.tensor(maskValues, [B * T, IN]);
      const scale = 16 / R;
      const p: LoraLinearParams = { weight: w, bias, frozen: true, lora: { a, b, scale, dropout: DROP } };
      if (kind === 'host') p.weightT = hostTranspose(w);
      const f = layer.forward(p, x);
      const yRef = maskedReference(x, m, w, bias, a, b, scale);
      expect(relError(f.y.dataSync(), yRef.dataSync())).toBeLessThan(1e-6);
      const unmasked = reference(x, w, bias, a, b, scale);
      expect(relError(f.y.dataSync(), unmasked.dataSync())).toBeGreaterThan(1e-3); // the mask is applied
      const r = layer.backward(p, f.saved, dy);
      const [gx, ga, gb] = tf.grads((xx: tf.Tensor, aa: tf.Tensor, bb: tf.Tensor) => maskedReference(xx, m, w, bias, aa, bb, scale))([x, a, b], dy);
      expect(relError(r.dx.dataSync(), gx.dataSync())).toBeLessThan(1e-5);
      expect(relError(values(r.dParams.lora_A), ga.dataSync())).toBeLessThan(1e-5);
      expect(relError(values(r.dParams.lora_B), gb.dataSync())).toBeLessThan(1e-5);
      tf.dispose([x, dy, w, bias, a, b, m, f.y, yRef, unmasked, r.dx, gx, ga, gb, p.weightT!]);
      for (const g of Object.values(r.dParams)) if (!(g instanceof Float32Array)) g.dispose();
    });

    it('dropout p = 0 is bitwise no dropout; no spec (evaluation) is the plain formula; no leaks', () => {
      const layers = makeLayerSet(kind, 2, 1e-5);
      const layer = new LoraLinear(layers.linear, kind === 'host');
      const x = tf.tensor(randomArray(B * T * IN, 41), [B, T, IN]);
      const dy = tf.tensor(randomArray(B * T * OUT, 42), [B, T, OUT]);
      const w = tf.tensor(randomArray(IN * OUT, 43), [IN, OUT]);
      const bias = tf.tensor(randomArray(OUT, 44), [OUT]);
      const a = tf.tensor(randomArray(IN * R, 45), [IN, R]);
      const b = tf.tensor(randomArray(R * OUT, 46), [R, OUT]);
      const wT = kind === 'host' ? { weightT: hostTranspose(w) } : {};
      const run = (dropout?: LoraDropoutSpec) => {
        const p: LoraLinearParams = { weight: w, bias, frozen: true, lora: { a, b, scale: 2, ...(dropout ? { dropout } : {}) }, ...wT };
        const f = layer.forward(p, x);
        const r = layer.backward(p, f.saved, dy);
        const out = [f.y.dataSync(), r.dx.dataSync(), values(r.dParams.lora_A), values(r.dParams.lora_B)].map((v) => Array.from(v));
        tf.dispose([f.y, r.dx]);
        for (const g of Object.values(r.dParams)) if (!(g instanceof Float32Array)) g.dispose();
        return out;
      };
      const plain = run();
      const before = tf.memory().numTensors;
      expect(run({ ...DROP, p: 0 })).toEqual(plain);
      const dropped = run(DROP);
      expect(dropped[0]).not.toEqual(plain[0]);
      expect(tf.memory().numTensors).toBe(before); // the mask and the masked input are freed by backward
      // A forward that is not backpropagated frees its mask too (evaluation passes carry no spec: lora-segments.ts).
      const g = layer.forward({ weight: w, bias, frozen: true, lora: { a, b, scale: 2, dropout: DROP }, ...wT }, x, false);
      g.y.dispose();
      g.saved.release();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, dy, w, bias, a, b, ...Object.values(wT)]);
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

describe('the LoRA dropout mask (lora-dropout.ts)', () => {
  const spec: LoraDropoutSpec = { p: 0.1, seed: 1337, step: 12, name: 'h.0.mlp.down_proj', firstRow: 0, seqLen: 16, firstFeature: 0 };
  it('drops about p of the elements, each kept one scaled by 1 / (1 - p)', () => {
    for (const p of [0.05, 0.1, 0.5]) {
      const m = loraDropoutMask({ ...spec, p }, 64 * 16, 96);
      const dropped = m.filter((v) => v === 0).length / m.length;
      expect(Math.abs(dropped - p), `p ${p}`).toBeLessThan(0.01); // 98,304 elements: 4 sigma is 0.006 at p = 0.5
      expect(m.every((v) => v === 0 || v === Math.fround(1 / (1 - p)))).toBe(true);
    }
  });
  it('is a function of the global row, position and feature: micro-batch and feature shards tile the whole; other steps, layers, seeds differ', () => {
    const whole = loraDropoutMask(spec, 4 * 16, 24);
    const rowsOf = (m: Float32Array, from: number, to: number, width: number) => Array.from(m.subarray(from * width, to * width));
    // rows 32..63 as a second micro-batch (or another data-parallel rank's rows)
    expect(Array.from(loraDropoutMask({ ...spec, firstRow: 2 }, 2 * 16, 24))).toEqual(rowsOf(whole, 32, 64, 24));
    // features 12..23 as a row-parallel tensor-parallel shard
    const shard = loraDropoutMask({ ...spec, firstFeature: 12 }, 4 * 16, 12);
    for (let n = 0; n < 4 * 16; n++) expect(Array.from(shard.subarray(n * 12, n * 12 + 12))).toEqual(Array.from(whole.subarray(n * 24 + 12, n * 24 + 24)));
    // packed rows: example e at position t of a packed row is masked as row firstRow + e, position t of the unpacked rows
    const examples = Int32Array.from([1, 1, 1, 0, 0, 0, 0, 0, 3, 3, 2, 2, 2, 2, -1, -1]);
    const positions = Int32Array.from([0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 3, 0, 1]);
    const packed = loraDropoutMask({ ...spec, seqLen: 8, examples, positions }, 16, 24);
    for (let n = 0; n < 14; n++) expect(Array.from(packed.subarray(n * 24, n * 24 + 24)), `position ${n}`).toEqual(Array.from(whole.subarray((examples[n] * 16 + positions[n]) * 24, (examples[n] * 16 + positions[n] + 1) * 24)));
    for (const other of [{ step: 13 }, { name: 'h.1.mlp.down_proj' }, { seed: 1338 }]) expect(Array.from(loraDropoutMask({ ...spec, ...other }, 4 * 16, 24))).not.toEqual(Array.from(whole));
  });
});

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
