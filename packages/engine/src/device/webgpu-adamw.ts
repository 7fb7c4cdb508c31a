import * as tf from '@tensorflow/tfjs-core';
import type { AdamWStep } from './device.js';

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

/** The WebGPU backend's program runner (tfjs-backend-webgpu's WebGPUBackend.runWebGPUProgram), typed as far as used here. */
interface ProgramRunner {
  runWebGPUProgram(program: ElementwiseProgram, inputs: tf.TensorInfo[], dtype: 'float32', uniforms: { type: 'float32'; data: number[] }[]): tf.TensorInfo;
}

/** tfjs-backend-webgpu's WebGPUProgram for a flat element-wise kernel over n values. */
interface ElementwiseProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms: string;
  getUserCode: () => string;
}

const WORKGROUP = 128;

function program(key: string, n: number, inputs: string[], uniforms: string[], value: string): ElementwiseProgram {
  return {
    outputShape: [n], shaderKey: `trainer_adamw_${key}`, dispatchLayout: { x: [0] }, dispatch: [Math.ceil(n / WORKGROUP), 1, 1],
    variableNames: inputs, workgroupSize: [WORKGROUP, 1, 1], size: true, uniforms: uniforms.map((u) => `${u} : f32,`).join(' '),
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${value}
        }
      }`,
  };
}

function run(p: ElementwiseProgram, inputs: tf.Tensor[], uniforms: number[]): tf.Tensor1D {
  const backend = tf.backend() as unknown as ProgramRunner;
  const info = backend.runWebGPUProgram(p, inputs, 'float32', uniforms.map((v) => ({ type: 'float32' as const, data: [v] })));
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
}

/** Whether the active backend runs these programs. */
export function fusedAdamWAvailable(): boolean {
  return tf.getBackend() === 'webgpu';
}

/** One AdamW update of a piece: new p, m, v (the given tensors are left alone). */
export function adamwOnWebGpu(s: AdamWTensors, grad: tf.Tensor1D, mask: tf.Tensor1D | null, h: AdamWStep): AdamWTensors {
  const n = grad.size;
  const g = 'g[index] * uniforms.factor';
  const m = run(program('m', n, ['m', 'g'], ['factor', 'b1', 'c1'], `let gs = ${g}; result[index] = m[index] * uniforms.b1 + gs * uniforms.c1;`), [s.m, grad], [h.gradFactor, h.beta1, 1 - h.beta1]);
  const v = run(program('v', n, ['v', 'g'], ['factor', 'b2', 'c2'], `let gs = ${g}; result[index] = v[index] * uniforms.b2 + (gs * gs) * uniforms.c2;`), [s.v, grad], [h.gradFactor, h.beta2, 1 - h.beta2]);
  const update = '(m[index] * uniforms.stepSize) / (sqrt(v[index]) * uniforms.invSqrtBc2 + uniforms.eps)';
  const scalars = ['stepSize', 'invSqrtBc2', 'eps', 'decay'];
  const values = [h.lr / h.bc1, 1 / Math.sqrt(h.bc2), h.eps, h.lr * h.weightDecay];
  const p = mask
    ? run(program('p_decay', n, ['p', 'm', 'v', 'mask'], scalars, `let pd = p[index] - (p[index] * mask[index]) * uniforms.decay; result[index] = pd - ${update};`), [s.p, m, v, mask], values)
    : run(program('p', n, ['p', 'm', 'v'], scalars, `result[index] = p[index] - ${update};`), [s.p, m, v], values);
  return { p, m, v };
}
