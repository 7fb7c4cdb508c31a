/**
 * Causal self-attention core on the host-kernel path (wasm, cpu). See attention.ts for the math.
 * On wasm with T % 8 == 0 and head size % 8 == 0 it runs fused in the SIMD module
 * (attention-fused.ts); otherwise, as described here.
 *
 * On wasm, batched (3-D) matMul runs at ~2 GFLOP/s while a plain 2-D matMul runs at ~25-30, so
 * attention is one 2-D matMul per (batch, head) pair, on operands laid out by JS loops so that no
 * matMul needs a transpose flag:
 *   forward   S = Qs Kt,  P = softmax(S + mask),  O = P V            (Qs = Q / sqrt(hs), Kt = K^T)
 *   backward  dP = dO Vt,  dV = Pt dO,  dS = softmax VJP,  dQs = dS K,  dK = dSt Qs
 * XNNPACK packs the right-hand operand of every product (a cost per element of it, plus a fixed
 * cost per call), so each right-hand operand is one of the small [T, hs] / [hs, T] matrices.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SimdKernels } from '../host/simd.js';
import { simdOp } from '../host/simd.js';
import { hostMutate, hostOp } from '../host/tensor-io.js';
import { fusedAttentionApplies, fusedAttentionBackward, fusedAttentionForward } from './attention-fused.js';
import type { BackwardResult, ForwardResult, Layer } from './layer.js';
import type { PackedRows } from './segment-mask.js';
import { SavedState, disposeAll, share } from './layer.js';

interface HostSaved {
  qkv: tf.Tensor;
  /** Attention probabilities, zero above the diagonal: one [T, T] per (b, h), or one [B*H, T, T] (fused). */
  probs: tf.Tensor[];
  fused: boolean;
}

/** Sizes of one call: qkv [B, T, 3C], H heads of size hs, BH = B * H (b, h) pairs. */
interface Dims {
  B: number;
  T: number;
  C: number;
  H: number;
  hs: number;
  BH: number;
  scale: number;
}

function repeat(shape: number[], n: number): number[][] {
  return Array.from({ length: n }, () => shape);
}

function matMulPairs(as: tf.Tensor[], bs: tf.Tensor[]): tf.Tensor[] {
  return as.map((a, i) => tf.matMul(a as tf.Tensor2D, bs[i] as tf.Tensor2D));
}

export class HostAttention implements Layer<PackedRows | null, SavedState<HostSaved>> {
  constructor(readonly heads: number) {}

  private dims(qkv: tf.Tensor): Dims {
    const [B, T, C3] = qkv.shape;
    const C = C3 / 3;
    const H = this.heads;
    const hs = C / H;
    return { B, T, C, H, hs, BH: B * H, scale: 1 / Math.sqrt(hs) };
  }

  /** qkv [B, T, 3C] -> y [B, T, C]; `packed` (segment ids) masks attention block-diagonally (segment-mask.ts). */
  forward(packed: PackedRows | null, qkv: tf.Tensor, train = true): ForwardResult<SavedState<HostSaved>> {
    if (fusedAttentionApplies(qkv, this.heads)) {
      const { y, probs } = fusedAttentionForward(qkv, this.heads, packed);
      if (!train) {
        probs.dispose();
        return { y, saved: SavedState.none() };
      }
      const qkvShared = share(qkv);
      return { y, saved: new SavedState({ qkv: qkvShared, probs: [probs], fused: true }, [qkvShared, probs]) };
    }
    const d = this.dims(qkv);
    const { B, T, C, BH } = d;
    // [B, T, 3C] -> per (b, h): Qs [T, hs], Kt [hs, T], V [T, hs]
    const simd = d.hs % 4 === 0 && T % 4 === 0; // SIMD kernels' tile constraints
    const splitShapes = [...repeat([T, d.hs], BH), ...repeat([d.hs, T], BH), ...repeat([T, d.hs], BH)];
    const split =
      (simd ? simdOp([qkv], splitShapes, (k, [src], outs) => splitHeadsSimd(k, src, outs, d, ['qs', 'kt', 'v'])) : null) ??
      hostOp([qkv], splitShapes, ([src], outs) => splitHeads(src, outs, d, ['qs', 'kt', 'v']));
    const [qs, kt, v] = [split.slice(0, BH), split.slice(BH, 2 * BH), split.slice(2 * BH)];
    const scores = matMulPairs(qs, kt); // BH x [T, T]
    disposeAll(...qs, ...kt);
    // Causal mask in place (-inf above the diagonal), then XNNPACK's softmax (3x faster than a JS one).
    const probs = scores.map((s, bh) => {
      const masked = hostMutate(s, (values) => (packed === null ? maskUpperTriangle(values, T) : packed.maskScores(values, Math.floor(bh / d.H), -Infinity)));
      const p = tf.softmax(masked);
      masked.dispose();
      return p;
    });
    const outs = matMulPairs(probs, v); // BH x [T, hs]
    disposeAll(...v);
    const [y] = // -> [B, T, C]
      (simd ? simdOp(outs, [[B, T, C]], (k, os, [dst]) => mergeHeadsSimd(k, os, dst, d)) : null) ??
      hostOp(outs, [[B, T, C]], (os, [dst]) => mergeHeads(os, dst, d));
    disposeAll(...outs);
    if (!train) {
      disposeAll(...probs);
      return { y, saved: SavedState.none() };
    }
    const qkvShared = share(qkv);
    return { y, saved: new SavedState({ qkv: qkvShared, probs, fused: false }, [qkvShared, ...probs]) };
  }

  /** dy [B, T, C] -> dqkv [B, T, 3C]. */
  backward(_packed: PackedRows | null, saved: SavedState<HostSaved>, dy: tf.Tensor): BackwardResult {
    const { qkv, probs, fused } = saved.take('Attention');
    if (fused) {
      const dqkv = fusedAttentionBackward(qkv, probs[0], dy, this.heads);
      saved.release();
      return { dx: dqkv, dParams: {} };
    }
    const d = this.dims(qkv);
    const { B, T, C, hs, BH } = d;
    // Per (b, h): dO [T, hs], Vt [hs, T], K [T, hs], Qs [T, hs], Pt [T, T]
    const simd = hs % 4 === 0 && T % 4 === 0;
    const partShapes = [...repeat([T, hs], BH), ...repeat([hs, T], BH), ...repeat([T, hs], BH), ...repeat([T, hs], BH), ...repeat([T, T], BH)];
    const parts =
      (simd
        ? simdOp([qkv, dy, ...probs], partShapes, (k, [src, dyp, ...ps], outs) => {
            splitHeadsGradSimd(k, dyp, outs.slice(0, BH), d);
            splitHeadsSimd(k, src, outs.slice(BH, 4 * BH), d, ['vt', 'k', 'qs']);
            for (let i = 0; i < BH; i++) k.transpose(ps[i], T, T, outs[4 * BH + i]);
          })
        : null) ??
      hostOp([qkv, dy, ...probs], partShapes, ([src, dyv, ...ps], outs) => {
        splitHeadsGrad(dyv, outs.slice(0, BH), d);
        splitHeads(src, outs.slice(BH, 4 * BH), d, ['vt', 'k', 'qs']);
        for (let i = 0; i < BH; i++) transposeSquare(ps[i], outs[4 * BH + i], T);
      });
    const [dO, vt, k, qs, pt] = [0, 1, 2, 3, 4].map((j) => parts.slice(j * BH, (j + 1) * BH));
    const dP = matMulPairs(dO, vt); // [T, T]
    const dV = matMulPairs(pt, dO); // [T, hs]
    disposeAll(...dO, ...vt, ...pt);
    // dS and its transpose [T, T], from P and dP
    const dSboth =
      (simd
        ? simdOp([...probs, ...dP], repeat([T, T], 2 * BH), (k, ins, outs) => {
            for (let i = 0; i < BH; i++) k.causalSoftmaxBackward(ins[i], ins[BH + i], outs[i], outs[BH + i], T);
          })
        : null) ??
      hostOp([...probs, ...dP], repeat([T, T], 2 * BH), (ins, outs) => {
        for (let i = 0; i < BH; i++) causalSoftmaxBackward(ins[i], ins[BH + i], outs[i], outs[BH + i], T);
      });
    disposeAll(...dP);
    saved.release();
    const [dS, dSt] = [dSboth.slice(0, BH), dSboth.slice(BH)];
    const dQs = matMulPairs(dS, k); // [T, hs], gradient wrt the scaled Q
    const dK = matMulPairs(dSt, qs); // [T, hs]
    disposeAll(...dSboth, ...k, ...qs);
    const grads = [...dQs, ...dK, ...dV];
    const [dqkv] =
      (simd ? simdOp(grads, [[B, T, 3 * C]], (k, ins, [dst]) => mergeHeadsGradSimd(k, ins, dst, d)) : null) ??
      hostOp(grads, [[B, T, 3 * C]], (ins, [dst]) => mergeHeadsGrad(ins, dst, d));
    disposeAll(...dQs, ...dK, ...dV);
    return { dx: dqkv, dParams: {} };
  }
}

type Part = 'qs' | 'kt' | 'k' | 'v' | 'vt';

/**
 * Copies per-(b, h) operands out of qkv [B, T, 3C] into outs (parts.length groups of BH arrays,
 * group order = parts): 'qs' = Q * scale [T, hs], 'k' / 'v' = [T, hs], 'kt' / 'vt' = [hs, T].
 */
function splitHeads(src: Float32Array, outs: Float32Array[], d: Dims, parts: Part[]): void {
  const { B, T, C, H, hs, BH, scale } = d;
  parts.forEach((part, group) => {
    const base = part === 'qs' ? 0 : part === 'k' || part === 'kt' ? C : 2 * C;
    const mul = part === 'qs' ? scale : 1;
    const transposed = part === 'kt' || part === 'vt';
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const dst = outs[group * BH + b * H + h];
        const off = base + h * hs;
        if (transposed) copyRowsTransposed(src, (b * T) * 3 * C + off, 3 * C, dst, T, hs);
        else copyRows(src, (b * T) * 3 * C + off, 3 * C, dst, T, hs, mul);
      }
    }
  });
}

/** dst[t * w + j] = mul * src[start + t * stride + j] for t < rows, j < w. */
function copyRows(src: Float32Array, start: number, stride: number, dst: Float32Array, rows: number, w: number, mul: number): void {
  for (let t = 0; t < rows; t++) {
    const s = start + t * stride;
    const o = t * w;
    for (let j = 0; j < w; j++) dst[o + j] = src[s + j] * mul;
  }
}

/** dst[j * rows + t] = src[start + t * stride + j]. */
function copyRowsTransposed(src: Float32Array, start: number, stride: number, dst: Float32Array, rows: number, w: number): void {
  for (let t = 0; t < rows; t++) {
    const s = start + t * stride;
    for (let j = 0; j < w; j++) dst[j * rows + t] = src[s + j];
  }
}

/** dy [B, T, C] -> per (b, h) dO [T, hs]. */
function splitHeadsGrad(dy: Float32Array, outs: Float32Array[], d: Dims): void {
  const { B, T, C, H, hs } = d;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) copyRows(dy, b * T * C + h * hs, C, outs[b * H + h], T, hs, 1);
}

/** Per (b, h) O [T, hs] -> [B, T, C]. */
function mergeHeads(os: Float32Array[], dst: Float32Array, d: Dims): void {
  const { B, T, C, H, hs } = d;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) placeRows(os[b * H + h], dst, b * T * C + h * hs, C, T, hs, 1);
}

/** Per (b, h) dQs, dK, dV [T, hs] (3 groups of BH) -> dqkv [B, T, 3C], undoing Q's scale. */
function mergeHeadsGrad(ins: Float32Array[], dst: Float32Array, d: Dims): void {
  const { B, T, C, H, hs, BH, scale } = d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const start = b * T * 3 * C + h * hs;
      placeRows(ins[bh], dst, start, 3 * C, T, hs, scale);
      placeRows(ins[BH + bh], dst, start + C, 3 * C, T, hs, 1);
      placeRows(ins[2 * BH + bh], dst, start + 2 * C, 3 * C, T, hs, 1);
    }
  }
}

/** dst[start + t * stride + j] = mul * src[t * w + j]. */
function placeRows(src: Float32Array, dst: Float32Array, start: number, stride: number, rows: number, w: number, mul: number): void {
  for (let t = 0; t < rows; t++) {
    const o = start + t * stride;
    const s = t * w;
    for (let j = 0; j < w; j++) dst[o + j] = src[s + j] * mul;
  }
}

/** s[i, j] = -inf for j > i (row-major [T, T]). */
export function maskUpperTriangle(s: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) s.fill(-Infinity, i * T + i + 1, (i + 1) * T);
}

/** dS = P * (dP - rowsum(P * dP)) on the lower triangle, 0 above it; also writes dS^T. */
export function causalSoftmaxBackward(p: Float32Array, dp: Float32Array, ds: Float32Array, dst: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    let dot = 0;
    for (let j = 0; j <= i; j++) dot += p[o + j] * dp[o + j];
    for (let j = 0; j <= i; j++) {
      const g = p[o + j] * (dp[o + j] - dot);
      ds[o + j] = g;
      dst[j * T + i] = g;
    }
    for (let j = i + 1; j < T; j++) {
      ds[o + j] = 0;
      dst[j * T + i] = 0;
    }
  }
}

function transposeSquare(src: Float32Array, dst: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    for (let j = 0; j < T; j++) dst[j * T + i] = src[o + j];
  }
}

// SIMD versions of the head split/merge (pointers into the wasm heap; offsets in floats).

function splitHeadsSimd(k: SimdKernels, src: number, outs: number[], d: Dims, parts: Part[]): void {
  const { B, T, C, H, hs, BH, scale } = d;
  parts.forEach((part, group) => {
    const base = part === 'qs' ? 0 : part === 'k' || part === 'kt' ? C : 2 * C;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const dst = outs[group * BH + b * H + h];
        const off = b * T * 3 * C + base + h * hs;
        if (part === 'kt' || part === 'vt') k.copyBlockTransposed(src, off, 3 * C, dst, T, hs);
        else k.copyBlock(src, off, 3 * C, dst, 0, hs, T, hs, part === 'qs' ? scale : 1);
      }
    }
  });
}

function splitHeadsGradSimd(k: SimdKernels, dy: number, outs: number[], d: Dims): void {
  const { B, T, C, H, hs } = d;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) k.copyBlock(dy, b * T * C + h * hs, C, outs[b * H + h], 0, hs, T, hs, 1);
}

function mergeHeadsSimd(k: SimdKernels, os: number[], dst: number, d: Dims): void {
  const { B, T, C, H, hs } = d;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) k.copyBlock(os[b * H + h], 0, hs, dst, b * T * C + h * hs, C, T, hs, 1);
}

function mergeHeadsGradSimd(k: SimdKernels, ins: number[], dst: number, d: Dims): void {
  const { B, T, C, H, hs, BH, scale } = d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const start = b * T * 3 * C + h * hs;
      k.copyBlock(ins[bh], 0, hs, dst, start, 3 * C, T, hs, scale);
      k.copyBlock(ins[BH + bh], 0, hs, dst, start + C, 3 * C, T, hs, 1);
      k.copyBlock(ins[2 * BH + bh], 0, hs, dst, start + 2 * C, 3 * C, T, hs, 1);
    }
  }
}
