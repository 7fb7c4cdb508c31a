/**
 * A parameter gradient computed with TF.js ops, handed over as the kernel set's contract says
 * (layer.ts): the host set's callers add Float32Arrays into host buffers, so the tensor is read
 * (in place on wasm) and freed; the tf set's callers take the device tensor itself.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { hostTake } from '../host/tensor-io.js';
import type { GradValue } from './layer.js';
import type { KernelSet } from './layer-set.js';

export function gradValue(t: tf.Tensor, kind: KernelSet): GradValue {
  return kind === 'host' ? hostTake(t) : t;
}
