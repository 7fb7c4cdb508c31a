/**
 * LayerNorm over the last axis (width C), applied to every row of x [..., C]:
 *
 *   mean = sum_c x / C,  var = sum_c (x - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
 *   norm = (x - mean) * rstd,  y = norm * weight + bias
 *
 * Backward (per row, with dnorm = dy * weight):
 *   dx = rstd * (dnorm - mean_c(dnorm) - norm * mean_c(dnorm * norm))
 *   dweight = sum_rows dy * norm,  dbias = sum_rows dy
 *
 * Kernels: layernorm-host.ts (HostLayerNorm, gradients as Float32Arrays), layernorm-tf.ts
 * (TfLayerNorm, gradients as device tensors).
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface LayerNormParams {
  /** Gain [C] (Hugging Face `ln_*.weight`). */
  weight: tf.Tensor;
  /** Shift [C] (Hugging Face `ln_*.bias`). */
  bias: tf.Tensor;
}

export { HostLayerNorm } from './layernorm-host.js';
export { TfLayerNorm } from './layernorm-tf.js';
