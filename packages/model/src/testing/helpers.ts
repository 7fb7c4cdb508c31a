import { initParams } from '../init.js';
/** Shared helpers for the model's tests. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { GPTConfig } from '../config.js';
import type { KernelSet } from '../layers/layer-set.js';
import { Rng } from '../prng.js';

/** A tiny config for gradient tests: 2 blocks, 2 heads of size 8. */
export const TINY: GPTConfig = { vocabSize: 32, contextLength: 8, layers: 2, heads: 2, dModel: 16, layerNormEps: 1e-5 };

/**
 * Backend x kernel-set combinations the gradient tests run: on wasm the host kernels run both
 * with the SIMD kernels (default) and with them off (the JS loops, as on cpu).
 */
export const VARIANTS: { backend: 'wasm' | 'cpu'; kind: KernelSet; simd: boolean }[] = [
  { backend: 'wasm', kind: 'host', simd: true },
  { backend: 'wasm', kind: 'host', simd: false },
  { backend: 'wasm', kind: 'tf', simd: true },
  { backend: 'cpu', kind: 'host', simd: true },
  { backend: 'cpu', kind: 'tf', simd: true },
];

export async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialise`);
  await tf.ready();
}

export function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.nextU32() % vocab);
}

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

/** ||a - b|| / ||b|| (Euclidean). */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** initParams(config, seed) plus noise (norm weights and biases away from 1 and 0), so every gradient path is exercised. */
export function perturbedParams(config: GPTConfig, seed: number): Float32Array {
  const flat = initParams(config, seed);
  const noise = randomArray(flat.length, seed + 1, 0.05);
  for (let i = 0; i < flat.length; i++) flat[i] += noise[i];
  return flat;
}
