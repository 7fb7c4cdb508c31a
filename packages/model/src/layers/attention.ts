/**
 * Causal multi-head self-attention core (no parameters: c_attn and c_proj are Linear layers around
 * it). Input qkv [B, T, 3C] = [q | k | v], each split into H heads of size hs = C / H:
 *
 *   S = Q K^T / sqrt(hs)            [B, H, T, T]
 *   P = softmax(S + mask)            mask = -inf above the diagonal (position t sees 0..t)
 *   O = P V                          [B, H, T, hs] -> [B, T, C]
 *
 * Backward, per (b, h):
 *   dP = dO V^T,  dV = P^T dO
 *   dS = P * (dP - rowsum(P * dP))   (softmax VJP)
 *   dQ = dS K / sqrt(hs),  dK = dS^T Q / sqrt(hs)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState } from './layer.js';

export { HostAttention } from './attention-host.js';

interface TfSaved {
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  p: tf.Tensor;
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above (exp underflows to 0). */
export function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** Generic kernels: batched TF.js matMuls (the natural path on native TensorFlow / CUDA). */
export class TfAttention implements Layer<null, SavedState<TfSaved>> {
  constructor(readonly heads: number) {}

  forward(_params: null, qkv: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    const [B, T, C3] = qkv.shape;
    const C = C3 / 3;
    const H = this.heads;
    const hs = C / H;
    const [y, q, k, v, p] = tf.tidy(() => {
      // [B, T, C] -> [B, H, T, hs]
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, hs]), [0, 2, 1, 3]);
      const [q, k, v] = tf.split(qkv, 3, 2).map(heads);
      const s = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hs)), causalMask(T));
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

  backward(_params: null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { q, k, v, p } = saved.take('Attention');
    const [B, H, T, hs] = q.shape;
    const C = H * hs;
    const dqkv = tf.tidy(() => {
      const dO = tf.transpose(tf.reshape(dy, [B, T, H, hs]), [0, 2, 1, 3]);
      const dP = tf.matMul(dO, v, false, true);
      const dV = tf.matMul(p, dO, true, false);
      const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(p, dP), -1, true)));
      const scale = 1 / Math.sqrt(hs);
      const dQ = tf.mul(tf.matMul(dS, k), scale);
      const dK = tf.mul(tf.matMul(dS, q, true, false), scale);
      const merge = (t: tf.Tensor) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, T, C]);
      return tf.concat([merge(dQ), merge(dK), merge(dV)], 2);
    });
    saved.release();
    return { dx: dqkv, dParams: {} };
  }
}
