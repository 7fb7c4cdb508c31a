/**
 * LayerNorm with TF.js ops only (native TensorFlow / CUDA, WebGPU); see layernorm.ts for the
 * math. Nothing crosses to the host: eps is a kept device constant, the gradients stay tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant } from './constants.js';
import type { ForwardResult, Layer } from './layer.js';
import { SavedState } from './layer.js';
import type { LayerNormParams } from './layernorm.js';

interface TfSaved {
  norm: tf.Tensor;
  rstd: tf.Tensor;
}

/** Generic kernels: TF.js ops only, every intermediate and gradient on the device. */
export class TfLayerNorm implements Layer<LayerNormParams, SavedState<TfSaved>> {
  constructor(readonly eps: number) {}

  forward(params: LayerNormParams, x: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    const [y, norm, rstd] = tf.tidy(() => {
      const mean = tf.mean(x, -1, true);
      const xc = tf.sub(x, mean);
      const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), constant(this.eps)));
      const norm = tf.mul(xc, rstd);
      return [tf.add(tf.mul(norm, params.weight), params.bias), norm, rstd];
    });
    if (!train) {
      tf.dispose([norm, rstd]);
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ norm, rstd }, [norm, rstd]) };
  }

  /** dy [..., C] -> dx [..., C], dweight [C] and dbias [C] (tensors the caller owns). */
  backward(params: LayerNormParams, saved: SavedState<TfSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: tf.Tensor; bias: tf.Tensor } } {
    const { norm, rstd } = saved.take('LayerNorm');
    const C = norm.shape[norm.shape.length - 1];
    const [dx, dW, dB] = tf.tidy(() => {
      const dnorm = tf.mul(dy, params.weight);
      const mD = tf.mean(dnorm, -1, true);
      const mDN = tf.mean(tf.mul(dnorm, norm), -1, true);
      const dx = tf.mul(rstd, tf.sub(tf.sub(dnorm, mD), tf.mul(norm, mDN)));
      const rows = tf.reshape(dy, [-1, C]);
      return [dx, tf.sum(tf.mul(rows, tf.reshape(norm, [-1, C])), 0), tf.sum(rows, 0)];
    });
    saved.release();
    return { dx, dParams: { weight: dW, bias: dB } };
  }
}
