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
 *
 * Collectives work on host arrays, so a tensor crosses twice per all-reduce: one asynchronous
 * download (Tensor.data(), never dataSync: a synchronous read stalls the device queue and throws
 * on WebGPU) and one upload of the result. Nothing else here touches host memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { share } from '../layers/layer.js';

export interface TensorParallelGroup {
  readonly size: number;
  readonly rank: number;
  allReduce(buf: Float32Array, opts?: { op?: 'sum' | 'max' }): Promise<void>;
}

/**
 * A float32 tensor's values in a host array of the caller's own, read asynchronously: a
 * collective may overwrite it. The cpu backend's read returns the tensor's backing array itself
 * (and tf.tensor adopts the array it is given), so there it is copied (a host copy, not a
 * crossing); every other backend's read already returns a fresh array.
 */
export async function downloadForCollective(t: tf.Tensor): Promise<Float32Array> {
  const values = (await t.data()) as Float32Array;
  return tf.getBackend() === 'cpu' ? values.slice() : values;
}

/**
 * Sum of a tensor over the group, as a new tensor (the input is not disposed). The only
 * crossings: one download and one upload of the tensor; none in a group of one.
 */
export async function allReduceTensor(t: tf.Tensor, group: TensorParallelGroup): Promise<tf.Tensor> {
  if (group.size === 1) return share(t);
  const values = await downloadForCollective(t);
  await group.allReduce(values, { op: 'sum' });
  return tf.tensor(values, t.shape, 'float32');
}

/** reduceFromTensorParallelRegion, forward: the row-parallel layer's partial sums, summed. */
export const reduceFromTensorParallelRegionForward = allReduceTensor;

/** copyToTensorParallelRegion, backward: the column-parallel layer's input gradients, summed. */
export const copyToTensorParallelRegionBackward = allReduceTensor;
