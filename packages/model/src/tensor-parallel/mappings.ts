/**
 * Communication at the boundaries of tensor-parallel regions, in conjugate pairs (Megatron-LM's
 * mappings.py). The model knows nothing of sockets: a TensorParallelGroup is anything that can
 * all-reduce a Float32Array over the ranks of the group (comm's ProcessGroup is one).
 *
 *   copyToTensorParallelRegion      forward: identity          backward: all-reduce (sum)
 *   reduceFromTensorParallelRegion  forward: all-reduce (sum)  backward: identity
 *
 * A column-parallel layer's input enters through the first (every rank reads the same x; the
 * input gradients of the ranks' column blocks add up); a row-parallel layer's partial outputs
 * leave through the second. Identity directions need no code, so each pair is one function per
 * direction that communicates: reduceForward at the row-parallel output, reduceBackward at the
 * column-parallel input's gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostDownload } from '../host/tensor-io.js';

export interface TensorParallelGroup {
  readonly size: number;
  readonly rank: number;
  allReduce(buf: Float32Array, opts?: { op?: 'sum' | 'max' }): Promise<void>;
}

/** Sum of a tensor over the group, as a new tensor (the input is not disposed). */
export async function allReduceTensor(t: tf.Tensor, group: TensorParallelGroup): Promise<tf.Tensor> {
  const values = hostDownload(t);
  if (group.size > 1) await group.allReduce(values, { op: 'sum' });
  return tf.tensor(values, t.shape);
}

/** reduceFromTensorParallelRegion, forward: the row-parallel layer's partial sums, summed. */
export const reduceFromTensorParallelRegionForward = allReduceTensor;

/** copyToTensorParallelRegion, backward: the column-parallel layer's input gradients, summed. */
export const copyToTensorParallelRegionBackward = allReduceTensor;
