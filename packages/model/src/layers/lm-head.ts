/**
 * Output head tied to the token embedding, fused with the mean cross-entropy loss:
 *
 *   logits = x wte^T                       [N, C] x [C, V]
 *   p = softmax(logits),  loss = -(1/M) sum_{n: target_n >= 0} log p[n, target_n]
 *
 * where M counts the targets >= 0 (negative targets are masked out, e.g. prompt tokens when
 * fine-tuning). Backward, for an upstream scalar gradient g = d(objective)/d(loss):
 *   dlogits[n] = (g / M) (p[n] - onehot(target_n))   for counted rows, 0 for masked rows
 *   dx = dlogits wte,  dwte = dlogits^T x
 *
 * The loss is a pending read (Promise<number>): on a device it is a scalar to download, and
 * waiting for it synchronously would stall the step (and throws on WebGPU). Host kernels return
 * an already-resolved promise.
 *
 * Kernels: lm-head-host.ts (HostLMHead, dwte as a Float32Array), lm-head-tf.ts (TfLMHead, dwte
 * as a device tensor).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParamGrads, Saved } from './layer.js';

export interface LMHeadParams {
  /** Token embedding [V, C], shared with the Embedding layer. */
  wte: tf.Tensor;
  /** Optional wte^T [C, V], derived by the owner of the params (host kernels use it). */
  wteT?: tf.Tensor;
  /** The weight takes no gradient (a LoRA run's frozen head): backward computes dx only, dParams is empty. */
  frozen?: boolean;
}

export interface LossForward<S extends Saved = Saved> {
  /** Mean cross-entropy over counted targets (0 when none is counted), once read from where it was computed. */
  loss: Promise<number>;
  /** Number of targets >= 0 (known on the host: counted from the targets array). */
  count: number;
  saved: S;
}

export interface LMHead<S extends Saved = Saved> {
  /** Logits [N, V] for rows x [..., C]. */
  logits(params: LMHeadParams, x: tf.Tensor): tf.Tensor;
  forward(params: LMHeadParams, x: tf.Tensor, targets: Int32Array, train?: boolean): LossForward<S>;
  /**
   * `dLoss` is the upstream gradient of the mean loss (the gradScale). dParams.wte is [V, C]: a
   * Float32Array from host kernels, a tensor the caller owns from tf kernels.
   */
  backward(params: LMHeadParams, saved: S, dLoss: number): { dx: tf.Tensor; dParams: ParamGrads };
}

/** x [..., C] -> rows [N, C] (a new handle on the same data). */
export function rowsOf(x: tf.Tensor): tf.Tensor2D {
  const C = x.shape[x.shape.length - 1];
  return tf.reshape(x, [x.size / C, C]);
}

/** Targets >= 0 (the counted ones). */
export function countTargets(targets: Int32Array): number {
  let count = 0;
  for (const t of targets) if (t >= 0) count++;
  return count;
}

export { HostLMHead, logitsBackward } from './lm-head-host.js';
export { TfLMHead } from './lm-head-tf.js';
