import * as tf from '@tensorflow/tfjs-core';
import type { AdamWStep } from './device.js';
import { flatProgram, onWebGpu, runProgram, type Uniform } from './webgpu-program.js';

/**
 * AdamW as three WGSL programs on the WebGPU backend (its custom-program API), instead of the ~15
 * element-wise TF.js kernels of TfDevice.adamw: each moment and the parameter read and written
 * once, no temporaries but the three new vectors. The same arithmetic in the same order:
 *
 *   g  = grad * factor
 *   m' = m b1 + g (1 - b1)
 *   v' = v b2 + g^2 (1 - b2)
 *   p' = (p - (p mask) lr wd) - (m' lr / bc1) / (sqrt(v') / sqrt(bc2) + eps)
 *
 * (a GPU may fuse a multiply and an add into one rounding: results agree with the generic
 * kernels to an ulp or so, which webgpu-adamw.test.ts checks.) mask is 1 where weight decay
 * applies; null when it applies nowhere.
 */
export interface AdamWTensors {
  p: tf.Tensor1D;
  m: tf.Tensor1D;
  v: tf.Tensor1D;
}

/** Whether the active backend runs these programs. */
export const fusedAdamWAvailable = onWebGpu;

/** One AdamW update of a piece: new p, m, v (the given tensors are left alone). */
export function adamwOnWebGpu(s: AdamWTensors, grad: tf.Tensor1D, mask: tf.Tensor1D | null, h: AdamWStep): AdamWTensors {
  const n = grad.size;
  const f = (name: string, value: number): Uniform => ({ name, type: 'f32', value });
  const g = 'g[index] * uniforms.factor';
  const mU = [f('factor', h.gradFactor), f('b1', h.beta1), f('c1', 1 - h.beta1)];
  const m = runProgram(flatProgram('adamw_m', n, ['m', 'g'], mU, `let gs = ${g}; result[index] = m[index] * uniforms.b1 + gs * uniforms.c1;`), [s.m, grad], 'float32', mU);
  const vU = [f('factor', h.gradFactor), f('b2', h.beta2), f('c2', 1 - h.beta2)];
  const v = runProgram(flatProgram('adamw_v', n, ['v', 'g'], vU, `let gs = ${g}; result[index] = v[index] * uniforms.b2 + (gs * gs) * uniforms.c2;`), [s.v, grad], 'float32', vU);
  const update = '(m[index] * uniforms.stepSize) / (sqrt(v[index]) * uniforms.invSqrtBc2 + uniforms.eps)';
  const pU = [f('stepSize', h.lr / h.bc1), f('invSqrtBc2', 1 / Math.sqrt(h.bc2)), f('eps', h.eps), f('decay', h.lr * h.weightDecay)];
  const p = mask
    ? runProgram(flatProgram('adamw_p_decay', n, ['p', 'm', 'v', 'mask'], pU, `let pd = p[index] - (p[index] * mask[index]) * uniforms.decay; result[index] = pd - ${update};`), [s.p, m, v, mask], 'float32', pU)
    : runProgram(flatProgram('adamw_p', n, ['p', 'm', 'v'], pU, `result[index] = p[index] - ${update};`), [s.p, m, v], 'float32', pU);
  return { p, m, v };
}
