import * as tf from '@tensorflow/tfjs-core';
import type { Range } from './device.js';

/** 1 on the decay ranges of a piece of n elements, 0 elsewhere (null: no decay anywhere). */
export function decayMask(decay: readonly Range[], n: number): tf.Tensor1D | null {
  if (decay.length === 0) return null;
  const parts: tf.Tensor1D[] = [];
  let pos = 0;
  for (const r of decay) {
    if (r.start > pos) parts.push(tf.fill([r.start - pos], 0) as tf.Tensor1D);
    parts.push(tf.fill([r.end - r.start], 1) as tf.Tensor1D);
    pos = r.end;
  }
  if (pos < n) parts.push(tf.fill([n - pos], 0) as tf.Tensor1D);
  if (parts.length === 1) return parts[0];
  const mask = tf.concat(parts) as tf.Tensor1D;
  tf.dispose(parts);
  return mask;
}
