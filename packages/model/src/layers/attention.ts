/**
 * Causal multi-head self-attention core (no parameters: c_attn and c_proj are Linear layers around
 * it). Input qkv [B, T, 3C] = [q | k | v], each split into H heads of size hs = C / H:
 *
 *   S = Q K^T / sqrt(hs)            [B, H, T, T]
 *   P = softmax(S + mask)            mask = -inf above the diagonal (position t sees 0..t)
 *   O = P V                          [B, H, T, hs] -> [B, T, C]
 *
 * Backward, per (b, h):
 *   dP = dO V^T,  dV = P^T dO
 *   dS = P * (dP - rowsum(P * dP))   (softmax VJP)
 *   dQ = dS K / sqrt(hs),  dK = dS^T Q / sqrt(hs)
 *
 * Kernels: attention-host.ts (HostAttention; fused SIMD in attention-fused.ts), attention-tf.ts
 * (TfAttention).
 */
export { causalMask } from './constants.js';
export { HostAttention } from './attention-host.js';
export { TfAttention } from './attention-tf.js';
