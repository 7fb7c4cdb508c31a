import * as tf from '@tensorflow/tfjs-core';

/**
 * Our own WGSL compute programs on the WebGPU backend, through @tensorflow/tfjs-backend-webgpu's
 * custom-program API (WebGPUBackend.runWebGPUProgram): a flat kernel over an output of n values,
 * one invocation per output value. The backend declares `result` (the output array), one
 * read-only array per input name, and `uniforms` (ours, and `size`: the output's length).
 */
export interface FlatProgram {
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

/** The WebGPU backend's program runner, typed as far as used here. */
interface ProgramRunner {
  runWebGPUProgram(program: FlatProgram, inputs: tf.TensorInfo[], dtype: 'float32' | 'int32', uniforms: { type: 'float32' | 'int32'; data: number[] }[]): tf.TensorInfo;
}

export type Uniform = { name: string; type: 'f32' | 'i32'; value: number };

const WORKGROUP = 128;

/**
 * A flat program: `body` computes output `index` (0 <= index < size) and assigns result[index];
 * `functions` are WGSL helpers it calls. The shader is compiled once per key and output size
 * class by the backend; uniforms change without recompiling.
 */
export function flatProgram(key: string, n: number, inputs: string[], uniforms: readonly Uniform[], body: string, functions = ''): FlatProgram {
  return {
    outputShape: [n], shaderKey: `trainer_${key}`, dispatchLayout: { x: [0] }, dispatch: [Math.ceil(n / WORKGROUP), 1, 1],
    variableNames: inputs, workgroupSize: [WORKGROUP, 1, 1], size: true, uniforms: uniforms.map((u) => `${u.name} : ${u.type},`).join(' '),
    getUserCode: () => `
      ${functions}
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${body}
        }
      }`,
  };
}

/** Runs a program on the active (WebGPU) backend; the output as a tensor. */
export function runProgram(p: FlatProgram, inputs: tf.Tensor[], dtype: 'float32' | 'int32', uniforms: readonly Uniform[]): tf.Tensor1D {
  const backend = tf.backend() as unknown as ProgramRunner;
  const info = backend.runWebGPUProgram(p, inputs, dtype, uniforms.map((u) => ({ type: u.type === 'f32' ? 'float32' as const : 'int32' as const, data: [u.value] })));
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
}

/**
 * Whether our WGSL programs run here: the active backend is WebGPU, unless
 * TRAINER_WEBGPU_PROGRAMS=0 (then the generic TF.js kernels run: for A/B measurements, and a way
 * out should a driver miscompile one).
 */
export function onWebGpu(): boolean {
  const off = typeof process !== 'undefined' && process.env.TRAINER_WEBGPU_PROGRAMS === '0';
  return !off && tf.getBackend() === 'webgpu';
}
