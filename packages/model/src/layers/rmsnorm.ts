/**
 * RMSNorm over the last axis (width C), applied to every row of x [..., C] (Llama, T5):
 *
 *   r = 1 / sqrt(mean_c x^2 + eps),   xhat = x * r,   y = xhat * weight
 *
 * Backward (per row, with g = dy * weight):
 *   dx = r * (g - xhat * mean_c(g * xhat))
 *   dweight = sum_rows dy * xhat
 *
 * TF.js ops on every backend. Gradients follow the layer contract (layer.ts): Float32Arrays for
 * the host kernel set, device tensors for the tf set.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult, Layer } from './layer.js';
import { SavedState, share } from './layer.js';
import { gradValue } from './grad-value.js';
import type { KernelSet } from './layer-set.js';

export interface RMSNormParams {
  /** Gain [C] (Hugging Face `input_layernorm.weight`, `post_attention_layernorm.weight`, `norm.weight`). */
  weight: tf.Tensor;
}

interface RMSNormSaved {
  /** xhat = x * r [..., C]. */
  xhat: tf.Tensor;
  /** r [..., 1]. */
  r: tf.Tensor;
}

export class RMSNorm implements Layer<RMSNormParams, SavedState<RMSNormSaved>> {
  constructor(private readonly eps: number, private readonly kind: KernelSet) {}

  forward(p: RMSNormParams, x: tf.Tensor, train = true): ForwardResult<SavedState<RMSNormSaved>> {
    const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), this.eps))); // [..., 1]
    const xhat = tf.mul(x, r);
    const y = tf.mul(xhat, p.weight);
    if (!train) {
      tf.dispose([r, xhat]);
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ xhat, r }, [xhat, r]) };
  }

  backward(p: RMSNormParams, saved: SavedState<RMSNormSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: Float32Array | tf.Tensor } } {
    const { xhat, r } = saved.take('RMSNorm');
    const C = xhat.shape[xhat.shape.length - 1];
    const [dx, dw] = tf.tidy(() => {
      const g = tf.mul(dy, p.weight);
      const dx = tf.mul(r, tf.sub(g, tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
      const dw = tf.sum(tf.reshape(tf.mul(dy, xhat), [-1, C]), 0); // [C]
      return [dx, dw];
    });
    saved.release();
    return { dx, dParams: { weight: gradValue(dw, this.kind) } };
  }
}

