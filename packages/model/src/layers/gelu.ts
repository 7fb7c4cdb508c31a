/**
 * GELU, tanh approximation (GPT-2's `gelu_new`, PyTorch `approximate="tanh"`):
 *
 *   y = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2 / pi)
 *     = x s  with  s = sigmoid(2u)          (since 0.5 (1 + tanh(u)) = sigmoid(2u))
 *   dy/dx = s + x s (1 - s) 2k (1 + 3 * 0.044715 x^2)
 */
import * as tf from '@tensorflow/tfjs-core';
import { fastExp } from '../host/math.js';
import { hostOp } from '../host/tensor-io.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState, share } from './layer.js';

const K = Math.sqrt(2 / Math.PI);
const A = 0.044715;

interface HostSaved {
  x: tf.Tensor;
  /** sigmoid(2u) per element, kept so backward needs no second exp. */
  s: Float32Array;
}

/** Host kernels: one JS pass with a fast exp (TF.js tanh on wasm costs ~20 ns per element). */
export class HostGelu implements Layer<null, SavedState<HostSaved>> {
  forward(_params: null, x: tf.Tensor, train = true): ForwardResult<SavedState<HostSaved>> {
    const s = new Float32Array(train ? x.size : 0);
    const [y] = hostOp([x], [x.shape], ([xv], [yv]) => geluForward(xv, yv, s, x.size));
    if (!train) return { y, saved: SavedState.none() };
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs, s }, [xs]) };
  }

  backward(_params: null, saved: SavedState<HostSaved>, dy: tf.Tensor): BackwardResult {
    const { x, s } = saved.take('Gelu');
    const [dx] = hostOp([x, dy], [x.shape], ([xv, dyv], [dxv]) => geluBackward(xv, s, dyv, dxv, x.size));
    saved.release();
    return { dx, dParams: {} };
  }
}

/** y = x sigmoid(2u); stores sigmoid(2u) in s when s is large enough (train). */
function geluForward(x: Float32Array, y: Float32Array, s: Float32Array, n: number): void {
  const keep = s.length >= n;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    const sig = 1 / (1 + fastExp(-2 * K * (v + A * v * v * v)));
    y[i] = v * sig;
    if (keep) s[i] = sig;
  }
}

/** dx = dy (s + x s (1 - s) 2k (1 + 3A x^2)). */
function geluBackward(x: Float32Array, s: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i];
    const sig = s[i];
    dx[i] = dy[i] * (sig + v * sig * (1 - sig) * 2 * K * (1 + 3 * A * v * v));
  }
}

interface TfSaved {
  x: tf.Tensor;
}

/** Generic kernels: TF.js ops only. */
export class TfGelu implements Layer<null, SavedState<TfSaved>> {
  forward(_params: null, x: tf.Tensor, train = true): ForwardResult<SavedState<TfSaved>> {
    const y = tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(2 * K, tf.add(x, tf.mul(A, tf.pow(x, 3)))))));
    if (!train) return { y, saved: SavedState.none() };
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs }, [xs]) };
  }

  backward(_params: null, saved: SavedState<TfSaved>, dy: tf.Tensor): BackwardResult {
    const { x } = saved.take('Gelu');
    const dx = tf.tidy(() => {
      const x2 = tf.square(x);
      const s = tf.sigmoid(tf.mul(2 * K, tf.mul(x, tf.add(1, tf.mul(A, x2)))));
      const du = tf.mul(2 * K, tf.add(1, tf.mul(3 * A, x2)));
      const grad = tf.add(s, tf.mul(tf.mul(x, tf.mul(s, tf.sub(1, s))), du));
      return tf.mul(dy, grad);
    });
    saved.release();
    return { dx, dParams: {} };
  }
}
