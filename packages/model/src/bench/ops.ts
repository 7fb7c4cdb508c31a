#!/usr/bin/env node
/**
 * Micro-benchmarks behind the kernel choices (ms per call, wasm unless --backend says otherwise):
 * plain vs transposed vs batched matMul, cached vs fresh right-hand operand, TF.js elementwise and
 * softmax ops, JS loops vs the SIMD module, and each layer's forward/backward at the gpt-nano shape.
 *
 *   node packages/model/dist/bench/ops.js [--backend wasm] [--json]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend.js';
import type { BackendName } from '../backend.js';
import { transpose } from '../host/math.js';
import { setSimdKernelsEnabled, simdOp } from '../host/simd.js';
import { hostOp } from '../host/tensor-io.js';
import type { Layer, Saved } from '../layers/layer.js';
import { makeLayerSet } from '../layers/layer-set.js';

interface Row {
  op: string;
  ms: number;
  gflops?: number;
}

const rows: Row[] = [];

/** Median ms of `reps` calls of f (after 3 warm-up calls); f returns what it allocated. */
function time(op: string, f: () => tf.Tensor | tf.Tensor[] | void, opts: { reps?: number; flops?: number } = {}): void {
  const run = (): number => {
    const t0 = performance.now();
    const out = f();
    if (out !== undefined) tf.dispose(out);
    return performance.now() - t0;
  };
  for (let i = 0; i < 3; i++) run();
  const ts = Array.from({ length: opts.reps ?? 20 }, run).sort((a, b) => a - b);
  const ms = ts[Math.floor(ts.length / 2)];
  rows.push({ op, ms, gflops: opts.flops === undefined ? undefined : opts.flops / ms / 1e6 });
}

const rand = (shape: number[]): tf.Tensor => tf.randomNormal(shape, 0, 1, 'float32', 1);

function matMuls(): void {
  for (const [m, k, n] of [
    [1024, 128, 384],
    [1024, 128, 512],
    [1024, 512, 128],
    [512, 1024, 128],
    [1024, 128, 2048],
    [2048, 1024, 128],
    [128, 1024, 2048],
  ]) {
    const a = rand([m, k]);
    const b = rand([k, n]);
    const flops = 2 * m * k * n;
    time(`matMul ${m}x${k}x${n} (same B: packed once)`, () => tf.matMul(a, b), { flops });
    time(`matMul ${m}x${k}x${n} (fresh B: packed per call)`, () => {
      const fresh = tf.add(b, 0);
      const c = tf.matMul(a, fresh);
      fresh.dispose();
      return c;
    }, { flops });
    time(`SIMD gemmNN ${m}x${k}x${n}`, () => simdOp([a, b], [[m, n]], (kk, [ap, bp], [cp]) => kk.gemmNN(ap, bp, 0, cp, m, k, n, false)) ?? undefined, { flops });
    const at = tf.transpose(a);
    time(`SIMD gemmTN ${m}x${k}x${n} (A^T read in place)`, () => simdOp([at, b], [[m, n]], (kk, [ap, bp], [cp]) => kk.gemmTN(ap, bp, cp, m, k, n)) ?? undefined, { flops });
    at.dispose();
    tf.dispose([a, b]);
  }
  const a = rand([1024, 128]);
  const bt = rand([512, 128]);
  time('matMul 1024x128x512 transposeB', () => tf.matMul(a, bt, false, true), { reps: 5, flops: 2 * 1024 * 128 * 512 });
  const at = rand([128, 1024]);
  const b = rand([128, 512]);
  time('matMul 1024x128x512 transposeA', () => tf.matMul(at, b, true, false), { reps: 3, flops: 2 * 1024 * 128 * 512 });
  const qa = rand([32, 128, 32]);
  const qb = rand([32, 32, 128]);
  time('batched matMul [32,128,32]x[32,32,128]', () => tf.matMul(qa, qb), { reps: 5, flops: 32 * 2 * 128 * 32 * 128 });
  const as = Array.from({ length: 32 }, () => rand([128, 32]));
  const bs = Array.from({ length: 32 }, () => rand([32, 128]));
  time('32 x 2-D matMul 128x32x128 (fresh B)', () => as.map((x, i) => {
    const fresh = tf.add(bs[i], 0);
    const c = tf.matMul(x, fresh);
    fresh.dispose();
    return c;
  }), { flops: 32 * 2 * 128 * 32 * 128 });
  tf.dispose([a, bt, at, b, qa, qb, ...as, ...bs]);
}

function elementwise(): void {
  const x = rand([1024, 512]);
  time('tf.tanh 512k', () => tf.tanh(x));
  time('tf.exp 512k', () => tf.exp(x));
  time('tf.sigmoid 512k', () => tf.sigmoid(x));
  time('tf.mul 512k', () => tf.mul(x, x));
  time('tf.transpose 1024x512', () => tf.transpose(x));
  time('JS transpose 1024x512', () => hostOp([x], [[512, 1024]], ([s], [d]) => transpose(s, 1024, 512, d)));
  time('SIMD transpose 1024x512', () => simdOp([x], [[512, 1024]], (k, [s], [d]) => k.transpose(s, 1024, 512, d)) ?? undefined);
  const logits = rand([1024, 2048]);
  time('tf.softmax 1024x2048', () => tf.softmax(logits));
  time('tf.logSoftmax 1024x2048', () => tf.logSoftmax(logits), { reps: 5 });
  tf.dispose([x, logits]);
}

/** forward + backward of one layer at the gpt-nano shape, host kernels with and without SIMD. */
function layers(): void {
  const B = 8;
  const T = 128;
  const C = 128;
  const run = (name: string, layer: Layer<unknown, Saved>, params: unknown, x: tf.Tensor): void => {
    for (const simd of [true, false]) {
      setSimdKernelsEnabled(simd);
      time(`${name} forward+backward (${simd ? 'SIMD' : 'JS loops'})`, () => {
        const { y, saved } = layer.forward(params, x);
        const { dx } = layer.backward(params, saved, y);
        return [y, dx];
      });
    }
    setSimdKernelsEnabled(true);
  };
  const set = makeLayerSet('host', 4, 1e-5);
  const x = rand([B, T, C]);
  const ln = { weight: tf.ones([C]), bias: tf.zeros([C]) };
  run('LayerNorm [8,128,128]', set.layerNorm as Layer<unknown, Saved>, ln, x);
  const h = rand([B, T, 4 * C]);
  run('GELU [8,128,512]', set.gelu as Layer<unknown, Saved>, null, h);
  const qkv = rand([B, T, 3 * C]);
  run('attention core [8,128,384], 4 heads', set.attention as Layer<unknown, Saved>, null, qkv);
  tf.dispose([x, ln.weight, ln.bias, h, qkv]);
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const i = process.argv.indexOf('--backend');
  const info = await initBackend((i >= 0 ? process.argv[i + 1] : 'wasm') as BackendName, json ? () => {} : console.log);
  matMuls();
  elementwise();
  layers();
  if (json) {
    console.log(JSON.stringify({ bench: 'model-ops', backend: info.name, rows }));
    return;
  }
  for (const r of rows) console.log(r.op.padEnd(58) + r.ms.toFixed(3).padStart(9) + ' ms' + (r.gflops === undefined ? '' : `${r.gflops.toFixed(1).padStart(7)} GFLOP/s`));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
