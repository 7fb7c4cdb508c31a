/**
 * Linear with TF.js ops only (the path for native TensorFlow / CUDA, and WebGPU); see linear.ts
 * for the math. Everything stays on the device: the gradients come back as tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ForwardResult, Layer } from './layer.js';
import { SavedState } from './layer.js';
import type { LinearParams, LinearSaved } from './linear.js';
import { rows } from './linear.js';

/** Generic kernels: a fused matMul + bias forward, matMuls with transpose flags backward. */
export class TfLinear implements Layer<LinearParams, SavedState<LinearSaved>> {
  forward(params: LinearParams, x: tf.Tensor, train = true): ForwardResult<SavedState<LinearSaved>> {
    const [inDim, outDim] = params.weight.shape;
    const x2 = tf.reshape(x, [rows(x), inDim]); // [..., in] -> [N, in]
    const y = tf.tidy(() =>
      tf.reshape(tf.fused.matMul({ a: x2 as tf.Tensor2D, b: params.weight as tf.Tensor2D, bias: params.bias }), [
        ...x.shape.slice(0, -1),
        outDim,
      ]),
    );
    if (!train) {
      x2.dispose();
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ x2 }, [x2]) };
  }

  /** dy [..., out] -> dx [..., in], dW [in, out] and db [out] (tensors the caller owns). */
  backward(params: LinearParams, saved: SavedState<LinearSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: tf.Tensor; bias: tf.Tensor } } {
    const { x2 } = saved.take('Linear');
    const [inDim, outDim] = params.weight.shape;
    const [dx, dW, db] = tf.tidy(() => {
      const dy2 = tf.reshape(dy, [x2.shape[0], outDim]) as tf.Tensor2D; // [N, out]
      const dx = tf.reshape(tf.matMul(dy2, params.weight as tf.Tensor2D, false, true), [...dy.shape.slice(0, -1), inDim]); // dY W^T
      return [dx, tf.matMul(x2 as tf.Tensor2D, dy2, true, false), tf.sum(dy2, 0)]; // X^T dY [in, out], sum_rows dY [out]
    });
    saved.release();
    return { dx, dParams: { weight: dW, bias: db } };
  }
}
