/** GELU on the host-kernel path (wasm, cpu); see gelu.ts for the math. */
import type * as tf from '@tensorflow/tfjs-core';
import { fastExp } from '../host/math.js';
import { simdOp } from '../host/simd.js';
import { hostOp } from '../host/tensor-io.js';
import { GELU_A as A, GELU_K as K } from './gelu.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import { SavedState, share } from './layer.js';

interface HostSaved {
  x: tf.Tensor;
  /** sigmoid(2u) per element, kept so backward needs no second exp. */
  s: tf.Tensor;
}

/**
 * Host kernels: one pass with a SIMD exp on wasm (simd.ts), or a JS pass with a fast exp
 * (TF.js tanh on wasm costs ~20 ns per element).
 */
export class HostGelu implements Layer<null, SavedState<HostSaved>> {
  forward(_params: null, x: tf.Tensor, train = true): ForwardResult<SavedState<HostSaved>> {
    const n = x.size;
    const [y, s] =
      simdOp([x], [x.shape, x.shape], (k, [xp], [yp, sp]) => k.geluForward(xp, yp, sp, n)) ??
      hostOp([x], [x.shape, x.shape], ([xv], [yv, sv]) => geluForward(xv, yv, sv, n));
    if (!train) {
      s.dispose();
      return { y, saved: SavedState.none() };
    }
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs, s }, [xs, s]) };
  }

  backward(_params: null, saved: SavedState<HostSaved>, dy: tf.Tensor): BackwardResult {
    const { x, s } = saved.take('Gelu');
    const n = x.size;
    const [dx] =
      simdOp([x, s, dy], [x.shape], (k, [xp, sp, dyp], [dxp]) => k.geluBackward(xp, sp, dyp, dxp, n)) ??
      hostOp([x, s, dy], [x.shape], ([xv, sv, dyv], [dxv]) => geluBackward(xv, sv, dyv, dxv, n));
    saved.release();
    return { dx, dParams: {} };
  }
}

/** y = x sigmoid(2u); stores sigmoid(2u) in s. */
function geluForward(x: Float32Array, y: Float32Array, s: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i];
    const sig = 1 / (1 + fastExp(-2 * K * (v + A * v * v * v)));
    y[i] = v * sig;
    s[i] = sig;
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
