/**
 * Causal attention fused into one SIMD host op per direction (wasm, T % 8 == 0, head size % 8 == 0).
 *
 * The XNNPACK path (attention-host.ts) issues one TF.js matMul per (batch, head) pair and product:
 * 6 * B * H calls per layer, each ~70 us of which half is per-call overhead (operator creation and
 * packing of a fresh right-hand side), and computes the masked upper triangles too. Here every
 * (b, h) pair runs in the SIMD module on scratch buffers: the head split, S = Qs Kt on the causal
 * tiles only, the causal softmax, O = P V skipping the zero half of P, and the merge, without a
 * TF.js op or an allocation per pair. Same math as attention.ts.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { SimdKernels } from '../host/simd.js';
import { simdHeapF32, simdKernels, simdOp } from '../host/simd.js';
import { disposeAll } from './layer.js';
import type { PackedRows } from './segment-mask.js';

/** Whether the fused kernels handle qkv [B, T, 3C] with `heads` heads on the active backend. */
export function fusedAttentionApplies(qkv: tf.Tensor, heads: number): boolean {
  const [, T, C3] = qkv.shape;
  const hs = C3 / 3 / heads;
  return T % 8 === 0 && hs % 8 === 0 && simdKernels() !== null;
}

interface Geometry {
  B: number;
  T: number;
  C: number;
  H: number;
  hs: number;
  scale: number;
}

function geometry(qkv: tf.Tensor, heads: number): Geometry {
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  return { B, T, C, H: heads, hs: C / heads, scale: 1 / Math.sqrt(C / heads) };
}

/**
 * qkv [B, T, 3C] -> y [B, T, C] and the probabilities P [B*H, T, T] (zero above the diagonal).
 * Packed rows: the scores of keys in other segments are set to -inf between the score GEMM and
 * the softmax (JS on the heap view), so their probabilities are exp(-87)-small (the SIMD exp
 * clamps its input at -87: below 2e-38, under any fp32 sum's rounding) and backward is unchanged.
 */
export function fusedAttentionForward(qkv: tf.Tensor, heads: number, packed: PackedRows | null = null): { y: tf.Tensor; probs: tf.Tensor } {
  const g = geometry(qkv, heads);
  const { B, T, C, H, hs, scale } = g;
  const scratch = [[T, hs], [hs, T], [T, hs], [T, T], [T, hs]]; // Qs, Kt, V, S, O
  const outs = simdOp([qkv], [[B, T, C], [B * H, T, T], ...scratch], (k, [src], [y, probs, qs, kt, v, s, o]) => {
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const q0 = b * T * 3 * C + h * hs; // first Q element of (b, h) in qkv
        const p = probs + (b * H + h) * T * T * 4;
        k.copyBlock(src, q0, 3 * C, qs, 0, hs, T, hs, scale);
        k.copyBlockTransposed(src, q0 + C, 3 * C, kt, T, hs);
        k.copyBlock(src, q0 + 2 * C, 3 * C, v, 0, hs, T, hs, 1);
        k.gemmCausalScores(qs, kt, s, T, hs); // S = Qs Kt   [T, T], causal tiles
        if (packed !== null) packed.maskScores(simdHeapF32()!.subarray(s >> 2, (s >> 2) + T * T), b, -Infinity);
        k.causalSoftmax(s, p, T); // P
        k.gemmTriangular(p, v, o, T, hs, false); // O = P V  [T, hs]
        k.copyBlock(o, 0, hs, y, b * T * C + h * hs, C, T, hs, 1);
      }
    }
  });
  if (outs === null) throw new Error('internal: fused attention called without SIMD kernels');
  const [y, probs, ...tmp] = outs;
  disposeAll(...tmp);
  return { y, probs };
}

/** dy [B, T, C] -> dqkv [B, T, 3C], from the forward's qkv and P. */
export function fusedAttentionBackward(qkv: tf.Tensor, probs: tf.Tensor, dy: tf.Tensor, heads: number): tf.Tensor {
  const g = geometry(qkv, heads);
  const { B, T, C, H, hs } = g;
  const th = [T, hs];
  const tt = [T, T];
  // dO, Vt, K, Qs, dV, dQ, dK [T, hs] / [hs, T]; dP, Pt, dS, dSt [T, T]
  const scratch = [th, [hs, T], th, th, th, th, th, tt, tt, tt, tt];
  const outs = simdOp([qkv, probs, dy], [[B, T, 3 * C], ...scratch], (k, [src, pAll, dyp], [dqkv, ...tmp]) => {
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) backwardPair(k, g, b, h, src, pAll, dyp, dqkv, tmp);
  });
  if (outs === null) throw new Error('internal: fused attention called without SIMD kernels');
  const [dqkv, ...tmp] = outs;
  disposeAll(...tmp);
  return dqkv;
}

function backwardPair(k: SimdKernels, g: Geometry, b: number, h: number, src: number, pAll: number, dy: number, dqkv: number, tmp: number[]): void {
  const { T, C, H, hs, scale } = g;
  const [dO, vt, kk, qs, dV, dQ, dK, dP, pt, dS, dSt] = tmp;
  const q0 = b * T * 3 * C + h * hs; // (b, h)'s first Q element in qkv and in dqkv
  const p = pAll + (b * H + h) * T * T * 4;
  k.copyBlock(dy, b * T * C + h * hs, C, dO, 0, hs, T, hs, 1);
  k.copyBlockTransposed(src, q0 + 2 * C, 3 * C, vt, T, hs);
  k.gemmCausalScores(dO, vt, dP, T, hs); // dP = dO Vt (causal tiles)
  k.transpose(p, T, T, pt);
  k.gemmTriangular(pt, dO, dV, T, hs, true); // dV = P^T dO
  k.copyBlock(dV, 0, hs, dqkv, q0 + 2 * C, 3 * C, T, hs, 1);
  k.causalSoftmaxBackward(p, dP, dS, dSt, T); // dS and dS^T
  k.copyBlock(src, q0 + C, 3 * C, kk, 0, hs, T, hs, 1);
  k.gemmTriangular(dS, kk, dQ, T, hs, false); // dQs = dS K
  k.copyBlock(dQ, 0, hs, dqkv, q0, 3 * C, T, hs, scale); // dQ = dQs / sqrt(hs)
  k.copyBlock(src, q0, 3 * C, qs, 0, hs, T, hs, scale);
  k.gemmTriangular(dSt, qs, dK, T, hs, true); // dK = dS^T Qs
  k.copyBlock(dK, 0, hs, dqkv, q0 + C, 3 * C, T, hs, 1);
}
