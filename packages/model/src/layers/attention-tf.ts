/**
 * Causal self-attention with batched TF.js matMuls (the natural path on native TensorFlow / CUDA
 * and WebGPU); see attention.ts for the math. The scale and the causal mask are kept device
 * tensors (constants.ts), so a call uploads nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { causalMask, constant } from './constants.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState } from './layer.js';

interface TfSaved {
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  p: tf.Tensor;
}

/** Generic kernels: batched TF.js matMuls. */
export class TfAttention implements Layer<null, SavedState<TfSaved>> {
  constructor(readonly heads: number) {}

  /** qkv [B, T, 3C] -> y [B, T, C]. */
  forward(_params: null, qkv: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    const [B, T, C3] = qkv.shape;
    const C = C3 / 3;
    const H = this.heads;
    const hs = C / H;
    const [y, q, k, v, p] = tf.tidy(() => {
      // [B, T, C] -> [B, H, T, hs]
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, hs]), [0, 2, 1, 3]);
      const [q, k, v] = tf.split(qkv, 3, 2).map(heads);
      const s = tf.add(tf.mul(tf.matMul(q, k, false, true), constant(1 / Math.sqrt(hs))), causalMask(T)); // [B, H, T, T]
      const p = tf.softmax(s);
      const o = tf.matMul(p, v); // [B, H, T, hs]
      const y = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, T, C]);
      return [y, q, k, v, p];
    });
    if (!train) {
      tf.dispose([q, k, v, p]);
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ q, k, v, p }, [q, k, v, p]) };
  }

  /** dy [B, T, C] -> dqkv [B, T, 3C]. */
  backward(_params: null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { q, k, v, p } = saved.take('Attention');
    const [B, H, T, hs] = q.shape;
    const C = H * hs;
    const dqkv = tf.tidy(() => {
      const dO = tf.transpose(tf.reshape(dy, [B, T, H, hs]), [0, 2, 1, 3]); // [B, T, C] -> [B, H, T, hs]
      const dP = tf.matMul(dO, v, false, true);
      const dV = tf.matMul(p, dO, true, false);
      const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(p, dP), -1, true)));
      const scale = constant(1 / Math.sqrt(hs));
      const dQ = tf.mul(tf.matMul(dS, k), scale);
      const dK = tf.mul(tf.matMul(dS, q, true, false), scale);
      const merge = (t: tf.Tensor) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, T, C]); // [B, H, T, hs] -> [B, T, C]
      return tf.concat([merge(dQ), merge(dK), merge(dV)], 2); // [B, T, 3C]
    });
    saved.release();
    return { dx: dqkv, dParams: {} };
  }
}
