/**
 * The uniform llm.c-style layer contract.
 *
 *   forward(params, x)          -> { y, saved }
 *   backward(params, saved, dy) -> { dx, dParams }
 *
 * Backward is the layer's vector-Jacobian product written out by hand (no tf.grads), so callers
 * can run anything (e.g. a collective) between any two layers in either direction.
 *
 * Ownership: forward and backward never dispose their inputs (params, x, dy). The caller owns y
 * and dx. `saved` owns whatever it holds; backward consumes it (releases it), and a caller that
 * will not run backward calls saved.release(). forward(params, x, false) keeps nothing.
 *
 * Gradients: dParams holds one GradValue per parameter, in the parameter's own (Hugging Face)
 * shape and orientation, keyed by the parameter's local name (e.g. 'weight', 'bias'):
 *  - host kernels return Float32Arrays (row-major): they already work in host-visible memory;
 *  - tf kernels return tf.Tensors, left on the device: on a GPU a download per parameter per
 *    micro-batch would be a PCIe round trip (and on WebGPU a synchronous read throws). The caller
 *    owns these tensors and disposes them (after reducing / accumulating them where it likes).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { reshape as tfReshape } from '@tensorflow/tfjs-core';

/** What a forward pass keeps for its backward pass. */
export interface Saved {
  /** Frees the tensors held (idempotent). */
  release(): void;
}

/** One parameter's gradient: host values (host kernels) or a device tensor the caller owns (tf kernels). */
export type GradValue = Float32Array | tf.Tensor;

/** Gradient per parameter (local name -> values in the parameter's shape; see the file comment). */
export type ParamGrads = Record<string, GradValue>;

export interface ForwardResult<S extends Saved> {
  y: tf.Tensor;
  saved: S;
}

export interface BackwardResult {
  dx: tf.Tensor;
  dParams: ParamGrads;
}

/** A tensor-to-tensor layer with parameters P and saved state S. */
export interface Layer<P, S extends Saved> {
  forward(params: P, x: tf.Tensor, train?: boolean): ForwardResult<S>;
  backward(params: P, saved: S, dy: tf.Tensor): BackwardResult;
}

/**
 * Saved state made of tensors and host arrays; release() disposes the tensors once.
 * `data` is typed by each layer; null when forward ran with train = false.
 */
export class SavedState<D extends object> implements Saved {
  private released = false;

  constructor(
    private readonly data: D | null,
    private readonly tensors: tf.Tensor[],
  ) {}

  /** Nothing saved (forward with train = false). */
  static none<D extends object>(): SavedState<D> {
    return new SavedState<D>(null, []);
  }

  /** The saved data for backward; throws if forward ran with train = false or it was consumed. */
  take(layer: string): D {
    if (this.data === null) throw new Error(`${layer}.backward: forward ran with train = false, nothing was saved`);
    if (this.released) throw new Error(`${layer}.backward: saved state already consumed or released`);
    return this.data;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.tensors) t.dispose();
  }
}

/** Disposes every tensor in a list (for intermediate results). */
export function disposeAll(...ts: (tf.Tensor | null | undefined)[]): void {
  for (const t of ts) t?.dispose();
}

/**
 * A new handle on the same data (reshape to the same shape shares the buffer by refcount on
 * every backend, where tf.clone copies on wasm). Saved states hold these so they own their inputs.
 */
export function share<T extends tf.Tensor>(t: T): T {
  return tfReshape(t, t.shape) as T;
}
