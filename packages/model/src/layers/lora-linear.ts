/**
 * A Linear with a frozen base weight and an optional LoRA adapter (lora/lora-config.ts):
 *
 *   y = x W + b + s (x A) B        W [in, out] frozen, A [in, r], B [r, out] trained, s = alpha / r
 *
 * Backward, with x and dy flattened to rows X [N, in], dY [N, out] and XA = X A [N, r] (saved):
 *   dB  = s XA^T dY                [r, N] x [N, out]
 *   dXA = s dY B^T                 [N, out] x [out, r]
 *   dA  = X^T dXA                  [in, N] x [N, r]
 *   dX  = dY W^T + dXA A^T         the frozen base's input gradient plus the adapter's
 * and no dW, db: the base is frozen (neither computed nor returned).
 *
 * Tensor parallel (Megatron-LM's split, applied to the adapter the way its base is split):
 *  - column-parallel base (W = [W_1 .. W_T] by output columns, x replicated): A replicated,
 *    B = [B_1 .. B_T] split by columns like W. Rank t computes y_t += s (x A) B_t exactly.
 *    dB_t is exact; dA_t = X^T (s dY_t B_t^T) is rank t's part of dA = sum_t dA_t (the caller
 *    all-reduces the replicated factor's gradient over the group); dX_t is partial like the
 *    base's dY_t W_t^T, summed by the block's copyToTensorParallelRegion backward.
 *  - row-parallel base (W split by input rows, x_t this rank's input columns): A = [A_1; ..; A_T]
 *    split by rows like W, B replicated. The adapter's partial x_t A_t B is added to the base's
 *    partial x_t W_t *before* the block's all-reduce (reduceFromTensorParallelRegion), which
 *    sums sum_t s (x_t A_t) B = s (x A) B: "sum after", no collective of its own in forward. Its
 *    conjugate in backward: dY is replicated, dA_t = X_t^T (s dY B^T) and dX_t are exact, and
 *    dB_t = s (X_t A_t)^T dY is rank t's part of dB = sum_t dB_t (all-reduced by the caller).
 * So forward needs no collective beyond the base's, and backward one all-reduce of the
 * replicated factors' gradients (lora/lora-segments.ts does it once per block).
 *
 * Dropout (lora/lora-dropout.ts), in training only: the adapter reads X~ = X * M instead of X,
 * M [N, in] holding 0 (dropped) or 1 / (1 - p) (kept), a pure function of where each element sits
 * in the step's global batch (built on the host, uploaded). With XA = X~ A:
 *   dB = s XA^T dY,  dXA = s dY B^T,  dA = X~^T dXA,  dX = dY W^T + (dXA A^T) * M
 * (X~ and M saved). The caller attaches `dropout` to training passes only (lora-segments.ts):
 * `train` here says whether to save for backward, and activation checkpointing's first forward
 * is a training pass that saves nothing.
 *
 * The math runs on TF.js ops whatever the kernel set (the adapter's products are thin: r is
 * small); with the host kernel set the gradients come back as host arrays, like HostLinear's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostTake } from '../host/tensor-io.js';
import { type LoraDropoutSpec, loraDropoutMask } from '../lora/lora-dropout.js';
import type { BackwardResult, ForwardResult, Layer, ParamGrads, Saved } from './layer.js';
import { SavedState } from './layer.js';
import type { LinearParams } from './linear.js';
import { rows } from './linear.js';

/** A LoRA adapter's tensors: A [in, r], B [r, out] (this rank's shards), s = alpha / r. */
export interface LoraAdapter {
  a: tf.Tensor;
  b: tf.Tensor;
  scale: number;
  /** Dropout on the adapter's input (training only; absent: none). */
  dropout?: LoraDropoutSpec;
}

export interface LoraLinearParams extends LinearParams {
  /** The base W (and b) take no gradient: only dX is computed through them. */
  frozen?: boolean;
  /** The adapter added to this linear (LoRA). */
  lora?: LoraAdapter;
}

interface LoraLinearSaved {
  /** The adapter's input as rows [N, in], masked under dropout (adapters only). */
  x2: tf.Tensor | null;
  /** The dropout mask [N, in] (0 or 1 / (1 - p)); null without dropout. */
  mask: tf.Tensor | null;
  /** X A [N, r] (adapters only). */
  xa: tf.Tensor | null;
  /** The base layer's saved state (a trained base only). */
  base: Saved | null;
}

export class LoraLinear implements Layer<LoraLinearParams, Saved> {
  /** @param base the kernel set's Linear; @param hostGrads return gradients as host arrays (host kernel set). */
  constructor(private readonly base: Layer<LinearParams, Saved>, private readonly hostGrads: boolean) {}

  forward(p: LoraLinearParams, x: tf.Tensor, train = true): ForwardResult<Saved> {
    if (!p.frozen && !p.lora) return this.base.forward(p, x, train);
    const baseTrain = train && !p.frozen;
    const base = this.base.forward(p, x, baseTrain);
    if (!p.lora) return { y: base.y, saved: train ? new LoraSavedState({ x2: null, xa: null, mask: null, base: null }) : SavedState.none() };
    const { a, b, scale, dropout } = p.lora;
    const inDim = a.shape[0];
    const n = rows(x);
    const mask = dropout && dropout.p > 0 ? tf.tensor(loraDropoutMask(dropout, n, inDim), [n, inDim], 'float32') : null;
    const x2 = mask ? tf.tidy(() => tf.mul(tf.reshape(x, [n, inDim]), mask)) : tf.reshape(x, [n, inDim]); // [..., in] -> [N, in], dropout(x)
    const xa = tf.matMul(x2 as tf.Tensor2D, a as tf.Tensor2D); // [N, r]
    const y = tf.tidy(() => tf.add(base.y, tf.reshape(tf.mul(tf.matMul(xa as tf.Tensor2D, b as tf.Tensor2D), scale), base.y.shape))); // [N, out] -> [..., out]
    base.y.dispose();
    if (!train) {
      x2.dispose();
      xa.dispose();
      mask?.dispose();
      return { y, saved: SavedState.none() };
    }
    const baseSaved = p.frozen ? null : base.saved;
    return { y, saved: new LoraSavedState({ x2, xa, mask, base: baseSaved }) };
  }

  /** dy [..., out] -> dx [..., in] and the gradients of what is trained: lora_A, lora_B (and weight, bias unless frozen). */
  backward(p: LoraLinearParams, saved: Saved, dy: tf.Tensor): BackwardResult {
    if (!p.frozen && !p.lora) return this.base.backward(p, saved, dy);
    const s = (saved as SavedState<LoraLinearSaved>).take('LoraLinear');
    const dParams: ParamGrads = {};
    let dx: tf.Tensor;
    if (s.base) {
      const r = this.base.backward(p, s.base, dy);
      dx = r.dx;
      Object.assign(dParams, r.dParams);
    } else {
      dx = this.frozenInputGrad(p, dy);
    }
    if (p.lora && s.x2 && s.xa) {
      const { a, b, scale } = p.lora;
      const x2 = s.x2;
      const xa = s.xa;
      const mask = s.mask;
      const [dA, dB, dxSum] = tf.tidy(() => {
        const dy2 = tf.reshape(dy, [x2.shape[0], b.shape[1]!]) as tf.Tensor2D; // [N, out]
        const dB = tf.mul(tf.matMul(tf.transpose(xa) as tf.Tensor2D, dy2), scale); // s XA^T dY [r, out]
        const dxa = tf.mul(tf.matMul(dy2, tf.transpose(b) as tf.Tensor2D), scale) as tf.Tensor2D; // s dY B^T [N, r]
        const dA = tf.matMul(tf.transpose(x2) as tf.Tensor2D, dxa); // X^T dXA [in, r]
        const dxa2 = tf.matMul(dxa, tf.transpose(a) as tf.Tensor2D); // dXA A^T [N, in]
        const dxl = tf.reshape(mask ? tf.mul(dxa2, mask) : dxa2, dx.shape); // (dXA A^T) * M [..., in]
        return [dA, dB, tf.add(dx, dxl)];
      });
      dx.dispose();
      dx = dxSum;
      dParams.lora_A = this.hostGrads ? hostTake(dA) : dA;
      dParams.lora_B = this.hostGrads ? hostTake(dB) : dB;
    }
    saved.release();
    return { dx, dParams };
  }

  /** dY W^T through the frozen base (W^T precomputed by the host kernel set: a plain product). */
  private frozenInputGrad(p: LoraLinearParams, dy: tf.Tensor): tf.Tensor {
    const [inDim, outDim] = p.weight.shape;
    return tf.tidy(() => {
      const dy2 = tf.reshape(dy, [rows(dy), outDim]) as tf.Tensor2D;
      const dx2 = p.weightT ? tf.matMul(dy2, p.weightT as tf.Tensor2D) : tf.matMul(dy2, p.weight as tf.Tensor2D, false, true);
      return tf.reshape(dx2, [...dy.shape.slice(0, -1), inDim]);
    });
  }
}

/** The adapter's saved tensors and, for a trained base, the base layer's saved state. */
class LoraSavedState extends SavedState<LoraLinearSaved> {
  constructor(private readonly parts: LoraLinearSaved) {
    super(parts, [parts.x2, parts.xa, parts.mask].filter((t): t is tf.Tensor => t !== null));
  }

  override release(): void {
    super.release();
    this.parts.base?.release();
  }
}
