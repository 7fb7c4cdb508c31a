/**
 * The vocabulary split over a tensor-parallel group (Megatron-LM's VocabParallelEmbedding and
 * vocab-parallel cross-entropy). Rank t holds rows V_t = [v0, v1) of wte.
 *
 * Embedding:  x[n] = allreduce_t( wte_t[tok_n - v0] if tok_n in V_t else 0 ) + wpe[pos_n]
 *             dwte_t[tok_n - v0] += dx[n] for tok_n in V_t;   dwpe[pos_n] += dx[n]   (replicated)
 *
 * Head (tied): logits_t = x wte_t^T [N, |V_t|], never gathered. With m = max over all ranks,
 * S = sum over all ranks of exp(logits - m), and the target's logit from the rank that holds it:
 *             loss_n = log S_n + m_n - logit_n[target_n]
 *             dlogits_t = (softmax_t - onehot_t) * g / M,   dx = allreduce_t(dlogits_t wte_t),
 *             dwte_t = dlogits_t^T x
 * Two small all-reduces in the head's forward (the max, then the sums of S and the target logits
 * together), one in its backward (dx, the conjugate of the replicated input), and one in the
 * embedding's forward (the partial rows).
 *
 * Kernels, chosen by the layer set (LayerSet.vocabParallelEmbedding / vocabParallelHead):
 *  - vocab-parallel-host.ts: host loops over tensor memory (wasm, cpu), gradients as Float32Arrays;
 *  - vocab-parallel-tf.ts: TF.js ops on the device; what crosses to the host is exactly what the
 *    all-reduces carry plus the int32 ids / targets. Gradients as tensors the caller owns.
 * Both give the loss as a promise (LossForward), already resolved: the head computes it on the
 * host from the all-reduced sums it already has.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { EmbeddingGrads, EmbeddingParams } from '../layers/embedding.js';
import type { ParamGrads, Saved } from '../layers/layer.js';
import type { LMHeadParams, LossForward } from '../layers/lm-head.js';

/** The vocab-parallel embedding of one rank (rows [v0, v0 + |V_t|) of wte). */
export interface VocabParallelEmbeddingLayer {
  /** tokens [B*T] (global ids) -> x [B, T, C], identical on every rank. */
  forward(p: EmbeddingParams, tokens: Int32Array, batch: number, train?: boolean, positions?: Int32Array): Promise<{ y: tf.Tensor; saved: Saved }>;
  /** dy [B, T, C] -> this rank's dwte [|V_t|, C] and dwpe [contextLength, C] (replicated). */
  backward(p: EmbeddingParams, saved: Saved, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads };
}

/** The vocab-parallel tied head and cross-entropy of one rank. */
export interface VocabParallelHeadLayer {
  /** x [..., C] and the global target ids [N] -> the mean loss over counted targets (identical on every rank). */
  forward(p: LMHeadParams, x: tf.Tensor, targets: Int32Array, train?: boolean): Promise<LossForward>;
  /** dLoss -> dx [..., C] (identical on every rank) and this rank's dwte [|V_t|, C]. */
  backward(p: LMHeadParams, saved: Saved, dLoss: number): Promise<{ dx: tf.Tensor; dParams: ParamGrads }>;
}

export { HostVocabParallelEmbedding, HostVocabParallelHead } from './vocab-parallel-host.js';
/** The host-kernel classes under their former names. */
export { HostVocabParallelEmbedding as VocabParallelEmbedding, HostVocabParallelHead as VocabParallelHead } from './vocab-parallel-host.js';
export { TfVocabParallelEmbedding, TfVocabParallelHead } from './vocab-parallel-tf.js';
