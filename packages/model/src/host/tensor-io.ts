/**
 * Host (JS) access to tensor memory: the one place that knows how each backend stores data.
 *
 * Host kernels (kernels written as JS loops over Float32Arrays) need to read tensors and to produce
 * new ones. Done naively that is a copy out (dataSync) and a copy in (tf.tensor) per op. Here:
 *  - wasm: inputs are read in place through views of the wasm heap, and outputs are allocated on
 *    the heap first and filled in place (zero copies). A heap view is only valid until the next
 *    wasm allocation (memory growth detaches the buffer), so views are taken after every output
 *    is allocated and only live for the duration of `body`, which must not call TF.js.
 *  - cpu: dataSync() returns the tensor's own backing array (no copy) and tf.tensor() adopts a
 *    fresh array (no copy).
 *  - any other backend (tensorflow, cuda): dataSync() copies out and tf.tensor() copies in.
 * Inputs are read-only by contract; only `hostMutate` writes into an existing tensor.
 *
 * Every access here is a host <-> device crossing and is counted by the transfer meter
 * (device/transfer-meter.ts): bytes of inputs read as device -> host, bytes of outputs written
 * as host -> device. Paths that go through the engine (dataSync, tf.tensor) are counted by the
 * meter's engine hooks; the direct ones (wasm heap views, cpu in-place writes) are recorded here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { recordDeviceToHost, recordHostToDevice } from '../device/transfer-meter.js';

/** The parts of the wasm backend we use (public methods of BackendWasm in tfjs-backend-wasm 4.x). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

function wasmBackend(): WasmHeapBackend | null {
  if (tf.getBackend() !== 'wasm') return null;
  const be = tf.backend() as unknown as Partial<WasmHeapBackend>;
  if (typeof be.makeOutput !== 'function' || typeof be.typedArrayFromHeap !== 'function') return null;
  return be as WasmHeapBackend;
}

function checkFloat(t: tf.Tensor): void {
  if (t.dtype !== 'float32') throw new Error(`host kernel input must be float32, got ${t.dtype} ${JSON.stringify(t.shape)}`);
  if (t.isDisposed) throw new Error(`host kernel input ${JSON.stringify(t.shape)} is disposed`);
}

/**
 * Runs a host kernel: allocates one float32 tensor per entry of `outShapes`, then calls
 * `body(inputs, outputs)` with read-only views of `inputs` and writable views of the outputs.
 * `body` must write every output element (wasm outputs start uninitialised) and must not call TF.js.
 */
export function hostOp(
  inputs: readonly tf.Tensor[],
  outShapes: readonly number[][],
  body: (ins: Float32Array[], outs: Float32Array[]) => void,
): tf.Tensor[] {
  for (const t of inputs) checkFloat(t);
  const wasm = wasmBackend();
  if (wasm !== null) {
    const infos = outShapes.map((s) => wasm.makeOutput(s.slice(), 'float32'));
    try {
      // Views are taken after the last allocation, so none of them can be detached by growth.
      const ins = inputs.map((t) => wasm.typedArrayFromHeap(t));
      const outs = infos.map((i) => wasm.typedArrayFromHeap(i));
      body(ins, outs);
      recordDeviceToHost(bytesOf(inputs));
      recordHostToDevice(4 * outShapes.reduce((n, s) => n + sizeOf(s), 0));
    } catch (err) {
      for (const i of infos) wasm.disposeData(i.dataId, true);
      throw err;
    }
    const engine = tf.engine();
    return infos.map((i) => engine.makeTensorFromTensorInfo(i, tf.backend()));
  }
  const ins = inputs.map((t) => t.dataSync() as Float32Array);
  const outs = outShapes.map((s) => new Float32Array(sizeOf(s)));
  body(ins, outs);
  return outs.map((o, i) => tf.tensor(o, outShapes[i].slice(), 'float32'));
}

/** Calls `body` with read-only views of `inputs` (no outputs); returns what body returns. */
export function hostRead<R>(inputs: readonly tf.Tensor[], body: (ins: Float32Array[]) => R): R {
  for (const t of inputs) checkFloat(t);
  const wasm = wasmBackend();
  if (wasm !== null) recordDeviceToHost(bytesOf(inputs)); // heap views: past the engine
  const ins = inputs.map((t) => (wasm !== null ? wasm.typedArrayFromHeap(t) : (t.dataSync() as Float32Array)));
  return body(ins);
}

/**
 * Modifies a tensor the caller exclusively owns (a fresh op output, never a clone or a param) in
 * place where the backend allows it; elsewhere returns a new tensor and disposes `t`.
 * Always use the returned tensor.
 */
export function hostMutate(t: tf.Tensor, body: (values: Float32Array) => void): tf.Tensor {
  checkFloat(t);
  const wasm = wasmBackend();
  if (wasm !== null) {
    body(wasm.typedArrayFromHeap(t));
    recordDeviceToHost(4 * t.size);
    recordHostToDevice(4 * t.size);
    return t;
  }
  if (tf.getBackend() === 'cpu') {
    body(t.dataSync() as Float32Array); // the backing array itself (the read is counted by the engine hook)
    recordHostToDevice(4 * t.size); // the write in place is not
    return t;
  }
  const values = Float32Array.from(t.dataSync() as Float32Array);
  body(values);
  const out = tf.tensor(values, t.shape, 'float32');
  t.dispose();
  return out;
}

/** A fresh copy of a tensor's values, then disposes the tensor. */
export function hostTake(t: tf.Tensor): Float32Array {
  const values = hostDownload(t);
  t.dispose();
  return values;
}

/** A fresh copy of a tensor's values. */
export function hostDownload(t: tf.Tensor): Float32Array {
  return hostRead([t], ([v]) => v.slice());
}

/** Bytes of float32 tensors. */
function bytesOf(ts: readonly tf.Tensor[]): number {
  let n = 0;
  for (const t of ts) n += 4 * t.size;
  return n;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
