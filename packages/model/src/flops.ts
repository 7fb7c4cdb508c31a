import type { GPTConfig } from './config.js';
import { familyOf, ffnHiddenOf, kvHeadsOf } from './config.js';

/**
 * Training FLOPs (forward + backward) per token at sequence length T, PaLM appendix B style:
 *
 *   flops/token = 6 N + 6 C V + 12 L C T
 *
 *   N = 12 L C^2   weights of the per-block matMuls (c_attn 3C^2, c_proj C^2, c_fc 4C^2,
 *                  mlp.c_proj 4C^2); each weight costs 2 FLOPs forward and 4 backward per token.
 *   6 C V          the tied output head (x wte^T), same 2 + 4 rule.
 *   12 L C T       attention scores and values: Q K^T and P V are 2 T C FLOPs each per token
 *                  forward (full T x T matrices, as computed; causal masking is not discounted),
 *                  times 3 for forward + backward.
 * LayerNorm, GELU, softmax, biases and the embedding lookup are not counted (as in PaLM's MFU).
 * A Llama's N is its block matrices, L (2 C^2 + 2 C KV D + 3 C F) (q, o; k, v; gate, up, down).
 */
export function flopsPerToken(config: GPTConfig, seqLen: number): number {
  const { layers: L, dModel: C, vocabSize: V } = config;
  const D = C / config.heads;
  const N = familyOf(config) === 'llama' ? L * (2 * C * C + 2 * C * kvHeadsOf(config) * D + 3 * C * ffnHiddenOf(config)) : 12 * L * C * C;
  return 6 * N + 6 * C * V + 12 * L * C * seqLen;
}
