/**
 * Every layer's explicit forward/backward pair, for both kernel sets on wasm and cpu, against
 * (1) tf.grads of a straightforward TF.js reference (tight) and (2) central finite differences
 * of the layer's own forward (loose, fp32, but independent of any reference).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setSimdKernelsEnabled } from '../host/simd.js';
import { VARIANTS, randomArray, randomTokens, relError, useBackend } from '../testing/helpers.js';
import { refAttention, refEmbedding, refGelu, refLayerNorm, refLinear, refTiedHeadLoss } from '../testing/reference-layers.js';
import type { GradValue, Layer, Saved } from './layer.js';
import type { KernelSet } from './layer-set.js';
import { makeLayerSet } from './layer-set.js';

const EPS = 1e-5;
const HEADS = 3;

function tensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);
}

/** A gradient's values: host kernels give arrays, tf kernels tensors (read here, then disposed). */
function gradValues(g: GradValue): Float32Array {
  if (g instanceof Float32Array) return g;
  const v = (g.dataSync() as Float32Array).slice();
  g.dispose();
  return v;
}

/** One forward + backward, everything disposed: creates the tf kernels' cached constants up front. */
function warmUp<P>(layer: Layer<P, Saved>, params: P, x: tf.Tensor): void {
  const { y, saved } = layer.forward(params, x);
  const dy = tf.onesLike(y);
  const { dx, dParams } = layer.backward(params, saved, dy);
  tf.dispose([y, dy, dx, ...Object.values(dParams).filter((g): g is tf.Tensor => !(g instanceof Float32Array))]);
}

/** sum(y * r) in float64. */
function dot(y: tf.Tensor, r: Float32Array): number {
  const v = y.dataSync();
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * r[i];
  return s;
}

interface Case<P> {
  name: string;
  layer: (kind: KernelSet) => Layer<P, Saved>;
  x: () => tf.Tensor;
  /** Parameter tensors in the order of paramNames, and the layer's params object built from them. */
  params: () => tf.Tensor[];
  paramNames: string[];
  build: (ps: tf.Tensor[]) => P;
  ref: (x: tf.Tensor, ps: tf.Tensor[]) => tf.Tensor;
}

const cases: Case<unknown>[] = [
  {
    name: 'LayerNorm',
    layer: (k) => makeLayerSet(k, HEADS, EPS).layerNorm as Layer<unknown, Saved>,
    x: () => tensor([2, 5, 12], 1, 2),
    params: () => [tf.tidy(() => tf.add(tensor([12], 2, 0.5), 1)), tensor([12], 3, 0.5)],
    paramNames: ['weight', 'bias'],
    build: ([weight, bias]) => ({ weight, bias }),
    ref: (x, [w, b]) => refLayerNorm(x, w, b, EPS),
  },
  {
    name: 'Linear (in < out)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).linear as Layer<unknown, Saved>,
    x: () => tensor([2, 5, 6], 4),
    params: () => [tensor([6, 10], 5, 0.5), tensor([10], 6, 0.5)],
    paramNames: ['weight', 'bias'],
    build: ([weight, bias]) => ({ weight, bias }),
    ref: (x, [w, b]) => refLinear(x, w, b),
  },
  {
    name: 'Linear (in > out)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).linear as Layer<unknown, Saved>,
    x: () => tensor([2, 5, 10], 7),
    params: () => [tensor([10, 6], 8, 0.5), tensor([6], 9, 0.5)],
    paramNames: ['weight', 'bias'],
    build: ([weight, bias]) => ({ weight, bias }),
    ref: (x, [w, b]) => refLinear(x, w, b),
  },
  {
    name: 'Linear (SIMD GEMM shapes: 8 rows, 16 -> 24)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).linear as Layer<unknown, Saved>,
    x: () => tensor([2, 4, 16], 14),
    params: () => [tensor([16, 24], 15, 0.5), tensor([24], 16, 0.5)],
    paramNames: ['weight', 'bias'],
    build: ([weight, bias]) => ({ weight, bias }),
    ref: (x, [w, b]) => refLinear(x, w, b),
  },
  {
    name: 'GELU',
    layer: (k) => makeLayerSet(k, HEADS, EPS).gelu as Layer<unknown, Saved>,
    x: () => tensor([2, 5, 8], 10, 2.5),
    params: () => [],
    paramNames: [],
    build: () => null,
    ref: (x) => refGelu(x),
  },
  {
    name: 'Attention (T=5, 3 heads of 4)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).attention as Layer<unknown, Saved>,
    x: () => tensor([2, 5, 36], 11, 1.5),
    params: () => [],
    paramNames: [],
    build: () => null,
    ref: (x) => refAttention(x, HEADS),
  },
  {
    name: 'Attention (T=16, 3 heads of 16: the fused SIMD path on wasm)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).attention as Layer<unknown, Saved>,
    x: () => tensor([2, 16, 144], 12, 1.5),
    params: () => [],
    paramNames: [],
    build: () => null,
    ref: (x) => refAttention(x, HEADS),
  },
  {
    name: 'Attention (T=24, 3 heads of 64, GPT-2 head size)',
    layer: (k) => makeLayerSet(k, HEADS, EPS).attention as Layer<unknown, Saved>,
    x: () => tensor([1, 24, 576], 13, 0.5),
    params: () => [],
    paramNames: [],
    build: () => null,
    ref: (x) => refAttention(x, HEADS),
  },
];

for (const { backend, kind, simd } of VARIANTS) {
  {
    describe(`layers on ${backend}, ${kind} kernels${kind === 'host' && backend === 'wasm' ? (simd ? ' (SIMD)' : ' (JS loops)') : ''}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
        setSimdKernelsEnabled(simd);
      });
      afterAll(() => setSimdKernelsEnabled(true));

      for (const c of cases) {
        it(`${c.name}: forward and backward match the tf.grads reference`, () => {
          const x = c.x();
          const ps = c.params();
          const layer = c.layer(kind);
          warmUp(layer, c.build(ps), x);
          const before = tf.memory().numTensors;
          const { y, saved } = layer.forward(c.build(ps), x);
          const refY = tf.tidy(() => c.ref(x, ps));
          expect(y.shape).toEqual(refY.shape);
          expect(relError(y.dataSync(), refY.dataSync())).toBeLessThan(1e-5);
          const r = randomArray(y.size, 99);
          const dy = tf.tensor(r, y.shape);
          const { dx, dParams } = layer.backward(c.build(ps), saved, dy);
          const grads = tf.tidy(() => tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(c.ref(args[0], args.slice(1)), dy)))([x, ...ps]));
          expect(relError(dx.dataSync(), grads[0].dataSync())).toBeLessThan(1e-4);
          c.paramNames.forEach((name, i) => {
            expect(relError(gradValues(dParams[name]), grads[i + 1].dataSync()), name).toBeLessThan(1e-4);
          });
          tf.dispose([y, refY, dy, dx, ...grads]);
          expect(tf.memory().numTensors).toBe(before);
          tf.dispose([x, ...ps]);
        });

        it(`${c.name}: backward matches central finite differences`, () => {
          const x = c.x();
          const ps = c.params();
          const layer = c.layer(kind);
          const { y, saved } = layer.forward(c.build(ps), x);
          const r = randomArray(y.size, 77);
          const dy = tf.tensor(r, y.shape);
          const { dx, dParams } = layer.backward(c.build(ps), saved, dy);
          const objective = (xx: tf.Tensor, pp: tf.Tensor[]): number => {
            const out = layer.forward(c.build(pp), xx, false).y;
            const v = dot(out, r);
            out.dispose();
            return v;
          };
          const h = 1e-2;
          const inputs = [x, ...ps];
          const analytic = [dx.dataSync() as Float32Array, ...c.paramNames.map((n) => gradValues(dParams[n]))];
          inputs.forEach((t, which) => {
            const base = t.dataSync().slice() as Float32Array;
            const scale = analytic[which].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            for (let probeIndex = 0; probeIndex < 12; probeIndex++) {
              const i = Math.floor((probeIndex * (base.length - 1)) / 11);
              const probe = (delta: number): number => {
                const v = base.slice();
                v[i] += delta;
                const pt = tf.tensor(v, t.shape);
                const args = inputs.map((u, j) => (j === which ? pt : u));
                const out = objective(args[0], args.slice(1));
                pt.dispose();
                return out;
              };
              const numeric = (probe(h) - probe(-h)) / (2 * h);
              expect(Math.abs(numeric - analytic[which][i]), `input ${which} [${i}]`).toBeLessThan(3e-3 * scale + 3e-3 * Math.abs(numeric));
            }
          });
          tf.dispose([x, ...ps, y, dy, dx]);
        });
      }

      it('Embedding: forward and parameter gradients match the tf.grads reference', () => {
        const set = makeLayerSet(kind, HEADS, EPS);
        const wte = tensor([11, 6], 20);
        const wpe = tensor([7, 6], 21);
        const tokens = randomTokens(10, 11, 22); // B = 2, T = 5 < context 7
        const { y, saved } = set.embedding.forward({ wte, wpe }, { tokens, batch: 2 });
        const refY = tf.tidy(() => refEmbedding(tokens, 2, wte, wpe));
        expect(relError(y.dataSync(), refY.dataSync())).toBeLessThan(1e-6);
        const dy = tensor(y.shape, 23);
        const { dParams } = set.embedding.backward({ wte, wpe }, saved, dy);
        const [gWte, gWpe] = tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(refEmbedding(tokens, 2, a, b), dy)))([wte, wpe]));
        expect(relError(gradValues(dParams.wte), gWte.dataSync())).toBeLessThan(1e-5);
        expect(relError(gradValues(dParams.wpe!), gWpe.dataSync())).toBeLessThan(1e-5);
        tf.dispose([wte, wpe, y, refY, dy, gWte, gWpe]);
      });

      for (const [label, shape, V] of [
        ['odd vocab', [2, 5, 6], 13],
        ['SIMD GEMM shapes', [2, 4, 8], 12],
      ] as [string, number[], number][]) {
        it(`LMHead (${label}): loss, dx and dwte match the tf.grads reference, with masked targets and a scale`, async () => {
          const set = makeLayerSet(kind, HEADS, EPS);
          const x = tensor(shape, 30, 1.5);
          const wte = tensor([V, shape[2]], 31, 0.7);
          const N = shape[0] * shape[1];
          const targets = randomTokens(N, V, 32);
          targets[0] = -1;
          targets[7] = -100;
          const fwd = set.head.forward({ wte }, x, targets);
          const refLoss = tf.tidy(() => refTiedHeadLoss(x, wte, targets));
          expect(fwd.count).toBe(N - 2);
          const loss = await fwd.loss;
          expect(Math.abs(loss - refLoss.dataSync()[0])).toBeLessThan(1e-5 * loss);
          const scale = 0.37;
          const { dx, dParams } = set.head.backward({ wte }, fwd.saved, scale);
          const [gx, gw] = tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.mul(refTiedHeadLoss(a, b, targets), scale))([x, wte]));
          expect(dx.shape).toEqual(x.shape);
          expect(relError(dx.dataSync(), gx.dataSync())).toBeLessThan(1e-4);
          expect(relError(gradValues(dParams.wte), gw.dataSync())).toBeLessThan(1e-4);
          tf.dispose([x, wte, refLoss, dx, gx, gw]);
        });
      }
    });
  }
}
