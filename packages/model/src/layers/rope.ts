/**
 * Rotary position embedding (RoPE, Su et al. 2021) in Hugging Face Llama's convention: the head
 * vector x [D] is split in halves (x1, x2) and, at position t,
 *
 *   y = x * cos(t f) + rotate_half(x) * sin(t f),   rotate_half(x) = (-x2, x1)
 *
 * with f = inv_freq repeated twice, inv_freq_i = theta^(-2i / D) (i < D/2), optionally rescaled
 * as Llama 3.1 does (rope_type "llama3": wavelengths above original_max / low_freq_factor are
 * stretched by `factor`, those below original_max / high_freq_factor kept, a smooth blend in
 * between). Hugging Face's q_proj / k_proj weights are stored for this convention (not Meta's
 * interleaved pairs), so they load unpermuted.
 *
 * Backward is the inverse rotation's transpose: dx = dy * cos + rotate_half^T(dy * sin), with
 * rotate_half^T(z) = (z2, -z1). No parameters; the tables depend only on T and are cached.
 * Packed rows (segment-mask.ts) give each token its position within its own sequence: the
 * table's rows are then gathered per token.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from '../config.js';

/** inv_freq [D/2] of a config, in float64 (Hugging Face's _compute_default / _compute_llama3_parameters). */
export function ropeInverseFrequencies(config: GPTConfig): Float64Array {
  const D = config.dModel / config.heads;
  const theta = config.ropeTheta ?? 10000;
  const inv = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / D);
  const s = config.ropeScaling;
  if (s === undefined) return inv;
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowWavelen) inv[i] = inv[i] / s.factor;
    else if (wavelen >= highWavelen) {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

export class RotaryEmbedding {
  private readonly inv: Float64Array;
  private readonly D: number;
  private readonly tables = new Map<number, { cos: tf.Tensor; sin: tf.Tensor }>();

  constructor(config: GPTConfig) {
    this.inv = ropeInverseFrequencies(config);
    this.D = config.dModel / config.heads;
  }

  /** cos and sin [1, T, 1, D] for positions 0..T-1 (kept for the layer's lifetime). */
  private table(T: number): { cos: tf.Tensor; sin: tf.Tensor } {
    let t = this.tables.get(T);
    if (t === undefined) {
      const D = this.D;
      const cos = new Float32Array(T * D);
      const sin = new Float32Array(T * D);
      for (let p = 0; p < T; p++) {
        for (let i = 0; i < D / 2; i++) {
          const a = p * this.inv[i];
          cos[p * D + i] = cos[p * D + i + D / 2] = Math.cos(a);
          sin[p * D + i] = sin[p * D + i + D / 2] = Math.sin(a);
        }
      }
      t = { cos: tf.keep(tf.tensor(cos, [1, T, 1, D])), sin: tf.keep(tf.tensor(sin, [1, T, 1, D])) };
      this.tables.set(T, t);
    }
    return t;
  }

  /** x [B, T, H D] -> rotated [B, T, H D]; `positions` [B*T] (packed rows) instead of 0..T-1 in every row. */
  forward(x: tf.Tensor, positions?: Int32Array): tf.Tensor {
    return this.apply(x, false, positions);
  }

  /** dy [B, T, H D] -> dx [B, T, H D] (the transpose of forward, at the same positions). */
  backward(dy: tf.Tensor, positions?: Int32Array): tf.Tensor {
    return this.apply(dy, true, positions);
  }

  /** cos and sin [B, T, 1, D] at the given positions [B*T], each < T (inside a tidy). */
  private gathered(B: number, T: number, positions: Int32Array): { cos: tf.Tensor; sin: tf.Tensor } {
    const table = this.table(T); // the row length's table, as unpacked rows use: one per T however the rows are packed
    const idx = tf.tensor2d(positions, [positions.length, 1], 'int32');
    // gatherND, not gather: tfjs-node's GatherV2 reads its indices back to the host to check bounds.
    const at = (t: tf.Tensor): tf.Tensor => tf.reshape(tf.gatherND(tf.reshape(t, [T, this.D]), idx), [B, T, 1, this.D]); // [1, T, 1, D] -> [B*T, D] -> [B, T, 1, D]
    return { cos: at(table.cos), sin: at(table.sin) };
  }

  /** Frees the cached tables. */
  dispose(): void {
    for (const t of this.tables.values()) tf.dispose([t.cos, t.sin]);
    this.tables.clear();
  }

  private apply(x: tf.Tensor, transpose: boolean, positions?: Int32Array): tf.Tensor {
    const [B, T, W] = x.shape;
    const D = this.D;
    return tf.tidy(() => {
      const { cos, sin } = positions === undefined ? this.table(T) : this.gathered(B, T, positions);
      const h = tf.reshape(x, [B, T, W / D, D]); // [B, T, H D] -> [B, T, H, D]
      const half = D / 2;
      if (!transpose) {
        const x1 = tf.slice(h, [0, 0, 0, 0], [B, T, W / D, half]);
        const x2 = tf.slice(h, [0, 0, 0, half], [B, T, W / D, half]);
        const rot = tf.concat([tf.neg(x2), x1], 3);
        return tf.reshape(tf.add(tf.mul(h, cos), tf.mul(rot, sin)), [B, T, W]);
      }
      const z = tf.mul(h, sin);
      const z1 = tf.slice(z, [0, 0, 0, 0], [B, T, W / D, half]);
      const z2 = tf.slice(z, [0, 0, 0, half], [B, T, W / D, half]);
      return tf.reshape(tf.add(tf.mul(h, cos), tf.concat([z2, tf.neg(z1)], 3)), [B, T, W]);
    });
  }
}
