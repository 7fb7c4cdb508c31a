/**
 * GELU with TF.js ops only; see gelu.ts for the math. Every coefficient is a kept device
 * constant (a JS number operand would upload a scalar per op per call; x^3 is x * x^2 rather
 * than tf.pow(x, 3) for the same reason).
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant } from './constants.js';
import { GELU_A as A, GELU_K as K } from './gelu.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState, share } from './layer.js';

interface TfSaved {
  x: tf.Tensor;
}

/** Generic kernels: TF.js ops only. */
export class TfGelu implements Layer<null, SavedState<TfSaved>> {
  forward(_params: null, x: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    // y = x sigmoid(2k (x + A x^3))
    const y = tf.tidy(() => {
      const cube = tf.mul(x, tf.square(x));
      return tf.mul(x, tf.sigmoid(tf.mul(constant(2 * K), tf.add(x, tf.mul(constant(A), cube)))));
    });
    if (!train) return { y, saved: SavedState.none() };
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs }, [xs]) };
  }

  backward(_params: null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { x } = saved.take('Gelu');
    const dx = tf.tidy(() => {
      const one = constant(1);
      const x2 = tf.square(x);
      const s = tf.sigmoid(tf.mul(constant(2 * K), tf.mul(x, tf.add(one, tf.mul(constant(A), x2))))); // sigmoid(2u)
      const du = tf.mul(constant(2 * K), tf.add(one, tf.mul(constant(3 * A), x2))); // d(2u)/dx
      const grad = tf.add(s, tf.mul(tf.mul(x, tf.mul(s, tf.sub(one, s))), du));
      return tf.mul(dy, grad);
    });
    saved.release();
    return { dx, dParams: {} };
  }
}
