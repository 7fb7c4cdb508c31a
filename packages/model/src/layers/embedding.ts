/**
 * Token + learned position embedding:  x[b, t] = wte[tokens[b, t]] + wpe[pos(b, t)]   -> [B, T, C]
 * Backward scatter-adds dx rows:  dwte[tokens[b, t]] += dx[b, t],  dwpe[pos(b, t)] += dx[b, t].
 * pos(b, t) = t, or in packed rows the position within the token's own sequence (segment-mask.ts).
 *
 * Kernels: embedding-host.ts (HostEmbedding: JS row gather and scatter-add in tensor memory,
 * gradients as Float32Arrays) and embedding-tf.ts (TfEmbedding: tf.gather and tf.scatterND,
 * whose duplicate indices sum, on the device, gradients as tensors).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradValue, Saved } from './layer.js';

export interface EmbeddingParams {
  /** Token embedding [V, C] (also the tied output head). */
  wte: tf.Tensor;
  /** Position embedding [contextLength, C]; absent for models without learned positions (Llama: RoPE). */
  wpe?: tf.Tensor;
}

/** A micro-batch of token ids: `batch` rows of `tokens.length / batch` positions. */
export interface TokenBatch {
  tokens: Int32Array;
  batch: number;
  /** Packed rows: each token's position within its sequence [B*T]; absent: t in every row. */
  positions?: Int32Array;
}

/** The wpe row of element n of a [B, T] batch. */
export function positionOf(n: number, T: number, positions: Int32Array | undefined): number {
  return positions === undefined ? n % T : positions[n];
}

/** The embedding's parameter gradients: wte [V, C] and wpe [contextLength, C] (zero past T). */
export type EmbeddingGrads<G extends GradValue = GradValue> = {
  wte: G;
  wpe?: G;
}; // a type, not an interface: assignable to ParamGrads (a record)

/**
 * What both kernel sets' embeddings offer (the input is token ids, not a tensor, so this is not
 * a Layer). backward needs the parameters only for their shapes; it has no input gradient.
 */
export interface EmbeddingLayer {
  /** tokens [B*T] -> x [B, T, C]. */
  forward(params: EmbeddingParams, input: TokenBatch, train?: boolean): { y: tf.Tensor; saved: Saved };
  /** dy [B, T, C] -> gradients of wte and wpe (Float32Arrays from host kernels, tensors the caller owns from tf kernels). */
  backward(params: EmbeddingParams, saved: Saved, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads };
}

export { HostEmbedding } from './embedding-host.js';
export { TfEmbedding, positionGradient } from './embedding-tf.js';
