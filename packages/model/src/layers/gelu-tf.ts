/**
 * GELU with TF.js ops only; see gelu.ts for the math. Every coefficient is a kept device
 * constant (a JS number operand would upload a scalar per op per call; x^3 is x * x^2 rather
 * than tf.pow(x, 3) for the same reason).
 *
 * Memory: every op's input is disposed as soon as its output exists, so the forward holds at
 * most two [n] buffers at once and the backward four (one tf.tidy around the chain would hold
 * all of its intermediates until it returned: 7 forward, 15 backward).
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant } from './constants.js';
import { GELU_A as A, GELU_K as K } from './gelu.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState, share } from './layer.js';

interface TfSaved {
  x: tf.Tensor;
}

/** x (c0 + c2 x^2), element-wise: four ops, at most two new [n] buffers alive at once. */
function xTimesQuadratic(x: tf.Tensor, c0: number, c2: number): tf.Tensor {
  const x2 = tf.square(x);
  const a = tf.mul(x2, constant(c2));
  x2.dispose();
  const b = tf.add(a, constant(c0));
  a.dispose();
  const r = tf.mul(x, b);
  b.dispose();
  return r;
}

/** 2u = 2k (x + A x^3), as x (2k + 2kA x^2). */
function twiceU(x: tf.Tensor): tf.Tensor {
  return xTimesQuadratic(x, 2 * K, 2 * K * A);
}

/** Generic kernels: TF.js ops only. */
export class TfGelu implements Layer<null, SavedState<TfSaved>> {
  forward(_params: null, x: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    // y = x sigmoid(2u)
    const z = twiceU(x);
    const s = tf.sigmoid(z);
    z.dispose();
    const y = tf.mul(x, s);
    s.dispose();
    if (!train) return { y, saved: SavedState.none() };
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs }, [xs]) };
  }

  /** dx = dy s (1 + x (1 - s) d(2u)/dx), with s = sigmoid(2u) and d(2u)/dx = 2k (1 + 3A x^2). */
  backward(_params: null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { x } = saved.take('Gelu');
    const one = constant(1);
    const xdu = xTimesQuadratic(x, 2 * K, 6 * K * A); // x d(2u)/dx
    const z = twiceU(x);
    const s = tf.sigmoid(z);
    z.dispose();
    const oneMinusS = tf.sub(one, s);
    const q = tf.mul(xdu, oneMinusS); // the moment of four buffers: x d(2u)/dx, s, 1 - s, q
    tf.dispose([xdu, oneMinusS]);
    const q1 = tf.add(q, one);
    q.dispose();
    const grad = tf.mul(s, q1); // s + x s (1 - s) d(2u)/dx
    tf.dispose([s, q1]);
    const dx = tf.mul(dy, grad);
    grad.dispose();
    saved.release();
    return { dx, dParams: {} };
  }
}
