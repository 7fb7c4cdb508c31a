/**
 * Linear (Hugging Face Conv1D orientation): y = x W + b with W [in, out], b [out], x [..., in].
 *
 * Backward, with x and dy flattened to rows X [N, in], dY [N, out]:
 *   dX = dY W^T          [N, out] x [out, in]
 *   dW = X^T dY          [in, N] x [N, out]
 *   db = sum_rows dY
 *
 * Kernels: linear-host.ts (HostLinear, gradients as Float32Arrays), linear-tf.ts (TfLinear,
 * gradients as device tensors).
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface LinearParams {
  /** W [in, out]. */
  weight: tf.Tensor;
  /** b [out]. */
  bias: tf.Tensor;
  /** Optional W^T [out, in], derived from weight by the owner of the params (host kernels use it). */
  weightT?: tf.Tensor;
}

export interface LinearSaved {
  /** The input as rows [N, in]. */
  x2: tf.Tensor;
}

/** Rows of x [..., w]: the product of every axis but the last. */
export function rows(t: tf.Tensor): number {
  return t.size / t.shape[t.shape.length - 1];
}

export { HostLinear, hostTranspose } from './linear-host.js';
export { TfLinear } from './linear-tf.js';
