/**
 * LayerNorm with TF.js ops only (native TensorFlow / CUDA, WebGPU); see layernorm.ts for the
 * math. Nothing crosses to the host: eps is a kept device constant, the gradients stay tensors.
 *
 * Memory: each [N, C] intermediate is disposed as soon as it is dead, so the forward holds at
 * most three [N, C] buffers at once (norm, norm * weight, y; two in evaluation) and the backward
 * three, where one tf.tidy around everything held five and seven.
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
    const mean = tf.mean(x, -1, true); // [..., 1]
    const xc = tf.sub(x, mean);
    mean.dispose();
    const rstd = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), constant(this.eps)))); // [..., 1]
    const norm = tf.mul(xc, rstd);
    xc.dispose();
    const scaled = tf.mul(norm, params.weight);
    if (!train) tf.dispose([norm, rstd]);
    const y = tf.add(scaled, params.bias);
    scaled.dispose();
    if (!train) return { y, saved: SavedState.none() };
    return { y, saved: new SavedState({ norm, rstd }, [norm, rstd]) };
  }

  /**
   * dy [..., C] -> dx = rstd (dnorm - mean(dnorm) - norm mean(dnorm norm)) with dnorm = dy weight,
   * dweight [C] and dbias [C] (tensors the caller owns).
   */
  backward(params: LayerNormParams, saved: SavedState<TfSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: tf.Tensor; bias: tf.Tensor } } {
    const { norm, rstd } = saved.take('LayerNorm');
    const C = norm.shape[norm.shape.length - 1];
    const [dW, dB] = tf.tidy(() => {
      const rows = tf.reshape(dy, [-1, C]);
      return [tf.sum(tf.mul(rows, tf.reshape(norm, [-1, C])), 0), tf.sum(rows, 0)];
    });
    const dnorm = tf.mul(dy, params.weight);
    const mD = tf.mean(dnorm, -1, true); // [..., 1]
    const mDN = tf.tidy(() => tf.mean(tf.mul(dnorm, norm), -1, true)); // [..., 1]
    const centred = tf.sub(dnorm, mD);
    tf.dispose([dnorm, mD]);
    const along = tf.mul(norm, mDN);
    mDN.dispose();
    const diff = tf.sub(centred, along);
    tf.dispose([centred, along]);
    const dx = tf.mul(diff, rstd);
    diff.dispose();
    saved.release();
    return { dx, dParams: { weight: dW, bias: dB } };
  }
}
