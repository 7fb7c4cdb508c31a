/**
 * Causal self-attention with batched TF.js matMuls (the natural path on native TensorFlow / CUDA
 * and WebGPU); see attention.ts for the math. The scale and the causal mask are kept device
 * tensors (constants.ts), so a call uploads nothing.
 *
 * Memory: the [B, H, T, T] tensors are the large ones, and each is disposed as soon as the next
 * exists: forward holds at most two (S + mask as P is made), backward two beyond the saved P
 * (dP - D and dS). Two choices make that possible:
 *  - q is scaled once, in [B, H, T, hs], so S needs no scaled copy (and dK = dS^T q needs none);
 *  - backward's row term D = rowsum(P * dP) is taken as rowsum(dO * O) (equal: dP = dO v^T and
 *    O = P v), from dy and the saved output y, so no P * dP product is made. y costs nothing to
 *    keep: it is the input its consumer (c_proj) saves anyway.
 */
import * as tf from '@tensorflow/tfjs-core';
import { causalMask, constant } from './constants.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { MASKED_SCORE, type PackedRows } from './segment-mask.js';
import { SavedState, share } from './layer.js';

interface TfSaved {
  /** q / sqrt(hs) [B, H, T, hs]. */
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  /** softmax(S + mask) [B, H, T, T]. */
  p: tf.Tensor;
  /** The output y [B, T, C] (a share). */
  y: tf.Tensor;
}

/**
 * The additive mask of packed rows [B, 1, T, T], built on the device from the segment ids (an
 * int32 upload of B*T, not B*T*T floats): the causal mask plus MASKED_SCORE where the query's and
 * the key's segments differ.
 */
function segmentMask(packed: PackedRows, B: number, T: number): tf.Tensor {
  return tf.tidy(() => {
    const seg = tf.tensor2d(packed.segments, [B, T], 'int32');
    const crosses = tf.notEqual(tf.reshape(seg, [B, 1, T, 1]), tf.reshape(seg, [B, 1, 1, T])); // [B, 1, T, T]
    return tf.add(causalMask(T), tf.mul(tf.cast(crosses, 'float32'), constant(MASKED_SCORE)));
  });
}

/** Generic kernels: batched TF.js matMuls. */
export class TfAttention implements Layer<PackedRows | null, SavedState<TfSaved>> {
  constructor(readonly heads: number) {}

  /** qkv [B, T, 3C] -> y [B, T, C]; `packed` (segment ids) masks attention block-diagonally (segment-mask.ts). */
  forward(packed: PackedRows | null, qkv: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    const [B, T, C3] = qkv.shape;
    const C = C3 / 3;
    const H = this.heads;
    const hs = C / H;
    /** Part i (q, k, v) of qkv as heads: one slice and one transpose, the slice freed at once. */
    const headsOf = (i: number): tf.Tensor => {
      const part = tf.slice(qkv, [0, 0, i * C], [B, T, C]);
      const h = tf.tidy(() => tf.transpose(tf.reshape(part, [B, T, H, hs]), [0, 2, 1, 3])); // [B, T, C] -> [B, H, T, hs]
      part.dispose();
      return h;
    };
    const qUnscaled = headsOf(0);
    const q = tf.mul(qUnscaled, constant(1 / Math.sqrt(hs)));
    qUnscaled.dispose();
    const k = headsOf(1);
    const v = headsOf(2);
    const s = tf.matMul(q, k, false, true); // [B, H, T, T]
    if (!train) tf.dispose([q, k]);
    const mask = packed === null ? causalMask(T) : segmentMask(packed, B, T);
    const masked = tf.add(s, mask);
    s.dispose();
    if (packed !== null) mask.dispose();
    const p = tf.softmax(masked);
    masked.dispose();
    const o = tf.matMul(p, v); // [B, H, T, hs]
    if (!train) tf.dispose([p, v]);
    const y = tf.tidy(() => tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, T, C])); // [B, H, T, hs] -> [B, T, C]
    o.dispose();
    if (!train) return { y, saved: SavedState.none() };
    const ys = share(y);
    return { y, saved: new SavedState({ q, k, v, p, y: ys }, [q, k, v, p, ys]) };
  }

  /**
   * dy [B, T, C] -> dqkv [B, T, 3C]: dV = P^T dO, dP = dO v^T, dS = P (dP - D) with
   * D = rowsum(dO O), dQ = dS k / sqrt(hs), dK = dS^T q (q already scaled). The saved tensors
   * are freed as soon as they are dead (release() at the end disposes what is left).
   */
  backward(_packed: PackedRows | null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { q, k, v, p, y } = saved.take('Attention');
    const [B, H, T, hs] = q.shape;
    const C = H * hs;
    const d = tf.tidy(() => {
      const perHead = tf.sum(tf.reshape(tf.mul(dy, y), [B, T, H, hs]), -1); // [B, T, H]
      return tf.reshape(tf.transpose(perHead, [0, 2, 1]), [B, H, T, 1]);
    });
    y.dispose();
    const dO = tf.tidy(() => tf.transpose(tf.reshape(dy, [B, T, H, hs]), [0, 2, 1, 3])); // [B, T, C] -> [B, H, T, hs]
    const dP = tf.matMul(dO, v, false, true); // [B, H, T, T]
    v.dispose();
    const dV = tf.matMul(p, dO, true, false);
    dO.dispose();
    const dPMinusD = tf.sub(dP, d);
    tf.dispose([dP, d]);
    const dS = tf.mul(p, dPMinusD);
    tf.dispose([dPMinusD, p]);
    const dQ = tf.tidy(() => tf.mul(tf.matMul(dS, k), constant(1 / Math.sqrt(hs))));
    const dK = tf.matMul(dS, q, true, false);
    dS.dispose();
    const heads = tf.concat([dQ, dK, dV], 1); // [B, 3H, T, hs]
    tf.dispose([dQ, dK, dV]);
    const dqkv = tf.tidy(() => tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), [B, T, 3 * C])); // -> [B, T, 3H, hs] -> [B, T, 3C]
    heads.dispose();
    saved.release();
    return { dx: dqkv, dParams: {} };
  }
}
