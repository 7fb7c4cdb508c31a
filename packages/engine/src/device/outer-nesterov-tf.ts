import * as tf from '@tensorflow/tfjs-core';
import { constant } from '@trainer/model';
import type { OuterStep } from './device.js';

/**
 * The outer optimizer's update as element-wise kernels on the backend (DiLoCo's outer step: SGD
 * with Nesterov momentum on the averaged pseudo-gradient; HostDevice has the same math in fp32):
 *
 *   g = delta x scale;  m = mu m + g;  anchor = anchor - lr (g + mu m)
 *
 * Returns the new anchor and momentum; the caller disposes the old ones and delta.
 */
export function outerNesterovTf(anchor: tf.Tensor1D, momentum: tf.Tensor1D, delta: tf.Tensor1D, h: OuterStep): { anchor: tf.Tensor1D; momentum: tf.Tensor1D } {
  return tf.tidy(() => {
    const g = tf.mul(delta, constant(h.scale));
    const m = tf.add(tf.mul(momentum, constant(h.momentum)), g) as tf.Tensor1D;
    const step = tf.mul(tf.add(g, tf.mul(m, constant(h.momentum))), constant(h.lr));
    return { anchor: tf.sub(anchor, step) as tf.Tensor1D, momentum: m };
  });
}
