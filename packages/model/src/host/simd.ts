/**
 * SIMD host kernels for the wasm backend (assembly/kernels.ts, compiled to a ~8 kB module).
 *
 * The module imports the wasm backend's own WebAssembly.Memory, so its functions read and write
 * tensors in place by byte offset: a call costs tens of ns and no copy, where a TF.js op costs
 * ~10 us (plus, for a matMul, packing its right-hand operand) and the JS loops of the generic host
 * path run 4 lanes narrower. Used only on wasm and only for shapes a kernel supports (widths
 * multiples of 4 or 8); otherwise the JS host path runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KERNELS_WASM_BASE64 } from './simd-kernels.generated.js';

/** Pointers are byte offsets into the wasm heap; sizes are element counts. */
export interface SimdKernels {
  geluForward(x: number, y: number, s: number, n: number): void;
  geluBackward(x: number, s: number, dy: number, dx: number, n: number): void;
  layerNormForward(x: number, g: number, b: number, y: number, mean: number, rstd: number, N: number, C: number, eps: number): void;
  layerNormBackward(x: number, dy: number, g: number, mean: number, rstd: number, dx: number, dW: number, dB: number, N: number, C: number): void;
  transpose(src: number, rows: number, cols: number, dst: number): void;
  columnSums(x: number, rows: number, cols: number, out: number): void;
  copyBlock(src: number, sOff: number, sStride: number, dst: number, dOff: number, dStride: number, rows: number, w: number, mul: number): void;
  copyBlockTransposed(src: number, sOff: number, sStride: number, dst: number, rows: number, w: number): void;
  causalSoftmaxBackward(p: number, dp: number, ds: number, dst: number, T: number): void;
  crossEntropyGrad(p: number, targets: number, dl: number, N: number, V: number, scale: number): void;
  gemmCausalScores(a: number, bt: number, c: number, T: number, K: number): void;
  gemmTriangular(a: number, b: number, c: number, T: number, K: number, upper: boolean): void;
  causalSoftmax(s: number, p: number, T: number): void;
  gemmNN(a: number, b: number, bias: number, c: number, M: number, K: number, N: number, hasBias: boolean): void;
  gemmTN(a: number, b: number, c: number, M: number, K: number, N: number): void;
}

interface WasmBackendLike {
  wasm?: { asm?: { memory?: unknown } };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

// The WebAssembly global (this package's TypeScript libs do not declare it).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Memory: abstract new (...args: never[]) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
};

let enabled = true;
const instances = new WeakMap<WasmMemory, SimdKernels>();
let compiled: object | null = null;

/** Turns the SIMD kernels off (true) or back on: tests use it to run the JS host path on wasm. */
export function setSimdKernelsEnabled(on: boolean): void {
  enabled = on;
}

function wasmBackend(): WasmBackendLike | null {
  if (tf.getBackend() !== 'wasm') return null;
  return tf.backend() as unknown as WasmBackendLike;
}

/** The kernels bound to the active wasm backend's memory, or null (other backend, disabled). */
export function simdKernels(): SimdKernels | null {
  if (!enabled) return null;
  const memory = wasmBackend()?.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  let k = instances.get(memory);
  if (k === undefined) {
    compiled ??= new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdKernels;
    instances.set(memory, k);
  }
  return k;
}

/**
 * The wasm heap as floats (index = byte offset / 4), for JS work between two kernel calls inside
 * a simdOp body (nothing allocates there, so the view stays valid); null off wasm.
 */
export function simdHeapF32(): Float32Array | null {
  const memory = wasmBackend()?.wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? new Float32Array(memory.buffer) : null;
}

/**
 * Runs a SIMD kernel: allocates float32 outputs on the wasm heap and calls body with the byte
 * offsets of inputs and outputs. Returns null (allocating nothing) when the SIMD kernels are not
 * available, so callers fall back to the JS host path.
 */
export function simdOp(
  inputs: readonly tf.Tensor[],
  outShapes: readonly number[][],
  body: (k: SimdKernels, ins: number[], outs: number[]) => void,
): tf.Tensor[] | null {
  const k = simdKernels();
  const be = wasmBackend();
  if (k === null || be === null) return null;
  for (const t of inputs) {
    if (t.dtype !== 'float32' || t.isDisposed) throw new Error(`SIMD kernel input must be a live float32 tensor, got ${t.dtype}`);
  }
  const infos = outShapes.map((s) => be.makeOutput(s.slice(), 'float32'));
  try {
    const ins = inputs.map((t) => be.typedArrayFromHeap(t).byteOffset);
    const outs = infos.map((i) => be.typedArrayFromHeap(i).byteOffset);
    body(k, ins, outs);
  } catch (err) {
    for (const i of infos) be.disposeData(i.dataId, true);
    throw err;
  }
  const engine = tf.engine();
  return infos.map((i) => engine.makeTensorFromTensorInfo(i, tf.backend()));
}
