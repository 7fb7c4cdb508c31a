import * as tf from '@tensorflow/tfjs-core';

/**
 * Element-wise work on large vectors without tf.tidy's cost: tidy frees intermediates only when it
 * ends, so a chain of k ops over n elements would hold k tensors of n at once. These free each
 * intermediate as soon as the next exists.
 */

/**
 * where(cond, a, b) of tensors of one shape, then frees cond and `done`. The Select kernel itself:
 * tf.where first broadcasts its three inputs, which for equal shapes clones each of them (a copy
 * of each on wasm: 2.25 more tensors of x's size alive at once).
 */
export function select(cond: tf.Tensor, a: tf.Tensor, b: tf.Tensor, done: tf.Tensor[]): tf.Tensor {
  const out = tf.engine().runKernel('Select', { condition: cond, t: a, e: b }) as tf.Tensor;
  tf.dispose([cond, ...done]);
  return out;
}

/** first, then each step on the previous result, which is freed as soon as the next exists. */
export function chain(first: tf.Tensor, ...steps: ((t: tf.Tensor) => tf.Tensor)[]): tf.Tensor {
  let t = first;
  for (const step of steps) {
    const next = step(t);
    t.dispose();
    t = next;
  }
  return t;
}
