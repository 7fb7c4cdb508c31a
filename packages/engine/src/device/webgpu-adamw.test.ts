import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@trainer/model';
import { afterAll, describe, expect, it } from 'vitest';
import type { AdamWStep } from './device.js';
import { TfDevice } from './tf-device.js';
import { fusedAdamWAvailable } from './webgpu-adamw.js';

/** SwiftShader, the software Vulkan driver of Debian's chromium (scripts/setup.sh). */
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

function vector(n: number, seed: number, scale: number, positive = false): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const u = seed / 2 ** 32;
    out[i] = positive ? u * scale : (u - 0.5) * scale;
  }
  return out;
}

/** Two TfDevice AdamW updates on the active backend; the new p, m, v read back. */
async function update(n: number, decay: { start: number; end: number }[], h: AdamWStep): Promise<Float32Array[]> {
  const d = new TfDevice();
  const state = { master: d.fromHost(vector(n, 1, 2), 'fp32'), m: d.fromHost(vector(n, 2, 0.1), 'fp32'), v: d.fromHost(vector(n, 3, 0.01, true), 'fp32') };
  const grad = d.fromHost(vector(n, 4, 1), 'fp32');
  d.adamw(state, grad, decay, h); // a first update caches the constants and step scalars
  const before = tf.memory().numTensors;
  d.adamw(state, grad, decay, h);
  expect(tf.memory().numTensors, 'an update replaces the three vectors and keeps nothing else').toBe(before);
  const out = await Promise.all([state.master, state.m, state.v].map((x) => d.toHost(x)));
  for (const x of [state.master, state.m, state.v, grad]) d.dispose(x);
  d.release();
  return out;
}

describe.runIf(existsSync(SWIFTSHADER))('AdamW as fused WGSL programs (WebGPU on SwiftShader)', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  it('gives the generic kernels\' update on wasm, to a few ulp, with and without weight decay, clipping and bias correction', async () => {
    const n = 10_001;
    const h: AdamWStep = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.95 ** 3, gradFactor: 0.37 };
    const cases: [string, { start: number; end: number }[], AdamWStep][] = [
      ['decay on two ranges, clipped', [{ start: 0, end: 4000 }, { start: 6000, end: n }], h],
      ['no decay, no clip', [], { ...h, weightDecay: 0, gradFactor: 1 }],
    ];
    await initBackend('wasm');
    const want = [];
    for (const [, decay, step] of cases) want.push(await update(n, decay, step));
    process.env.VK_ICD_FILENAMES = SWIFTSHADER;
    await initBackend('webgpu');
    expect(fusedAdamWAvailable()).toBe(true);
    for (const [c, [label, decay, step]] of cases.entries()) {
      const got = await update(n, decay, step);
      for (const [k, name] of ['p', 'm', 'v'].entries()) {
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[k][i] - want[c][k][i]) / Math.max(Math.abs(want[c][k][i]), 1e-30));
        expect(worst, `${label}: ${name}, largest relative difference`).toBeLessThan(4e-7); // a few ulp of fp32 (2^-23 = 1.2e-7)
      }
    }
  }, 120_000);
});
