/**
 * The tied head and cross-entropy with TF.js ops only; see lm-head.ts for the math.
 *
 * What crosses per micro-batch: the targets, uploaded once as int32 in forward (kept for
 * backward; the one-hot and the row mask are derived from them on the device), the 4-byte NLL
 * sum read back asynchronously (the loss promise), and in backward the per-call factor dLoss / M
 * as a fresh scalar. Probabilities, logits and both gradients stay on the device.
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant } from './constants.js';
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
 * From target ids [N] (int32, negative = masked): mask [N, 1] (1 for counted rows, else 0) and
 * onehot [N, V] of the counted targets (masked rows all zero), both float32, on the device.
 */
function targetsOneHot(ids: tf.Tensor1D, V: number): { onehot: tf.Tensor; mask: tf.Tensor } {
  const zero = constant(0, 'int32');
  const mask = tf.expandDims(tf.cast(tf.greaterEqual(ids, zero), 'float32'), 1); // [N] -> [N, 1]
  const onehot = tf.mul(tf.cast(tf.oneHot(tf.maximum(ids, zero), V), 'float32'), mask); // [N, V]
  return { onehot, mask };
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
    const V = params.wte.shape[0];
    const ids = tf.tensor1d(targets, 'int32'); // the micro-batch's one upload
    const count = countTargets(targets);
    const [nll, probs] = tf.tidy(() => {
      const logp = tf.logSoftmax(this.logits(params, x)); // [N, V]
      const { onehot } = targetsOneHot(ids, V);
      return [tf.neg(tf.sum(tf.mul(onehot, logp))) as tf.Scalar, tf.exp(logp)];
    });
    const loss = readMeanLoss(nll, count);
    if (!train) {
      tf.dispose([probs, ids]);
      return { loss, count, saved: SavedState.none() };
    }
    const x2 = rowsOf(x);
    return { loss, count, saved: new SavedState({ xShape: x.shape, x2, probs, ids, count }, [x2, probs, ids]) };
  }

  /** dLoss -> dx [..., C] and dwte [V, C] (tensors the caller owns). */
  backward(params: LMHeadParams, saved: SavedState<TfHeadSaved>, dLoss: number): { dx: tf.Tensor; dParams: { wte: tf.Tensor } } {
    const { xShape, x2, probs, ids, count } = saved.take('LMHead');
    const V = params.wte.shape[0];
    const [dx, dwte] = tf.tidy(() => {
      const scale = tf.scalar(count > 0 ? dLoss / count : 0); // varies per call: a fresh 4-byte upload
      const { onehot, mask } = targetsOneHot(ids, V);
      const dlogits = tf.mul(tf.sub(tf.mul(probs, mask), onehot), scale) as tf.Tensor2D; // [N, V]
      const dx = tf.reshape(tf.matMul(dlogits, params.wte as tf.Tensor2D), xShape); // [N, V] x [V, C]
      return [dx, tf.matMul(dlogits, x2 as tf.Tensor2D, true, false)]; // [V, N] x [N, C]
    });
    saved.release();
    return { dx, dParams: { wte: dwte } };
  }
}
