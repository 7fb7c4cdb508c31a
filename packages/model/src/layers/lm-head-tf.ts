/**
 * The tied head and cross-entropy with TF.js ops only; see lm-head.ts for the math.
 *
 * What crosses per micro-batch: the targets, uploaded once as int32 in forward (kept for
 * backward; the (row, target) pairs and the row mask are derived from them on the device), the
 * 4-byte NLL sum read back asynchronously (the loss promise), and in backward the per-call factor
 * dLoss / M as a fresh scalar. Probabilities, logits and both gradients stay on the device.
 *
 * Memory: no one-hot is made. The loss is log-sum-exp minus the target's logit, gathered at the
 * (row, target) pairs; backward writes probs - 1 at those pairs (tf.tensorScatterUpdate) and
 * applies the row factor (dLoss / M, 0 on masked rows) to the [N, C] operands of the two matMuls.
 * Each [N, V] tensor is disposed as soon as the next exists: forward holds at most two (the
 * logits and their shifted copy, then that and its exp, then exp and probs), backward one beside
 * the saved probs (freed at once).
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant, rowIndices } from './constants.js';
import { SavedState } from './layer.js';
import type { LMHead, LMHeadParams, LossForward } from './lm-head.js';
import { countTargets, rowsOf } from './lm-head.js';

interface TfHeadSaved {
  /** Shape of the input x, to give dx the same shape. */
  xShape: number[];
  /** x as rows [N, C]. */
  x2: tf.Tensor;
  /** softmax(logits) [N, V]. */
  probs: tf.Tensor;
  /** The targets [N], int32, on the device. */
  ids: tf.Tensor1D;
  count: number;
}

/**
 * From target ids [N] (int32, negative = masked): the pairs (n, target_n) [N, 2] int32 (masked
 * rows at column 0) and mask [N] (1 for counted rows, else 0, float32), on the device.
 */
function targetPairs(ids: tf.Tensor1D): [tf.Tensor2D, tf.Tensor1D] {
  return tf.tidy(() => {
    const zero = constant(0, 'int32');
    const mask = tf.cast(tf.greaterEqual(ids, zero), 'float32') as tf.Tensor1D;
    const pairs = tf.concat([rowIndices(ids.size), tf.expandDims(tf.maximum(ids, zero), 1)], 1) as tf.Tensor2D; // [N, 2]
    return [pairs, mask];
  });
}

/**
 * The mean loss from a device scalar holding the NLL sum: one asynchronous 4-byte read (none
 * when nothing is counted); the scalar is disposed once read.
 */
function readMeanLoss(nllSum: tf.Scalar, count: number): Promise<number> {
  if (count === 0) {
    nllSum.dispose();
    return Promise.resolve(0);
  }
  return nllSum.data().then(
    (v) => {
      nllSum.dispose();
      return v[0] / count;
    },
    (err: unknown) => {
      nllSum.dispose();
      throw err;
    },
  );
}

/** Generic kernels: TF.js ops only. */
export class TfLMHead implements LMHead<SavedState<TfHeadSaved>> {
  /** x [..., C] -> logits [N, V] = x wte^T. */
  logits(params: LMHeadParams, x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.matMul(rowsOf(x), params.wte as tf.Tensor2D, false, true));
  }

  forward(params: LMHeadParams, x: tf.Tensor, targets: Int32Array, train = true): LossForward<SavedState<TfHeadSaved>> {
    const ids = tf.tensor1d(targets, 'int32'); // the micro-batch's one upload
    const count = countTargets(targets);
    const logits = this.logits(params, x); // [N, V]
    const shifted = tf.tidy(() => tf.sub(logits, tf.max(logits, 1, true))); // logits - row max [N, V]
    logits.dispose();
    const [pairs, mask] = targetPairs(ids);
    const target = tf.gatherND(shifted, pairs); // [N]: the target's shifted logit
    const e = tf.exp(shifted);
    shifted.dispose();
    const sumExp = tf.sum(e, 1); // [N]
    const probs = train ? tf.tidy(() => tf.div(e, tf.expandDims(sumExp, 1))) : null; // [N, V]
    e.dispose();
    // nll_n = log sum_v exp(logit_v - max) - (logit_target - max), summed over the counted rows
    const nll = tf.tidy(() => tf.sum(tf.mul(tf.sub(tf.log(sumExp), target), mask))) as tf.Scalar;
    tf.dispose([pairs, mask, target, sumExp]);
    const loss = readMeanLoss(nll, count);
    if (probs === null) {
      ids.dispose();
      return { loss, count, saved: SavedState.none() };
    }
    const x2 = rowsOf(x);
    return { loss, count, saved: new SavedState({ xShape: x.shape, x2, probs, ids, count }, [x2, probs, ids]) };
  }

  /**
   * dLoss -> dx [..., C] and dwte [V, C] (tensors the caller owns), as
   * dx = ((probs - onehot) wte) r and dwte = (probs - onehot)^T (x r) with the row factor
   * r = dLoss / M on counted rows, 0 on masked ones: the same as dlogits = r (probs - onehot).
   */
  backward(params: LMHeadParams, saved: SavedState<TfHeadSaved>, dLoss: number): { dx: tf.Tensor; dParams: { wte?: tf.Tensor } } {
    const { xShape, x2, probs, ids, count } = saved.take('LMHead');
    const scale = tf.scalar(count > 0 ? dLoss / count : 0); // varies per call: a fresh 4-byte upload
    const [pairs, mask] = targetPairs(ids);
    const rowFactor = tf.tidy(() => tf.mul(tf.expandDims(mask, 1), scale)); // [N, 1]
    // probs - onehot: probs with p - 1 written at the counted targets (masked rows keep theirs; r zeroes them)
    const residual = tf.tidy(() => tf.tensorScatterUpdate(probs, pairs, tf.sub(tf.gatherND(probs, pairs), mask))); // [N, V]
    probs.dispose(); // dead now; release() below disposes the rest
    const dx = tf.tidy(() => tf.reshape(tf.mul(tf.matMul(residual as tf.Tensor2D, params.wte as tf.Tensor2D), rowFactor), xShape)); // [N, V] x [V, C]
    const dwte = params.frozen ? null : tf.tidy(() => tf.matMul(residual as tf.Tensor2D, tf.mul(x2, rowFactor) as tf.Tensor2D, true, false)); // [V, N] x [N, C]
    tf.dispose([residual, rowFactor, pairs, mask, scale]);
    saved.release();
    return { dx, dParams: dwte ? { wte: dwte } : {} };
  }
}
