/**
 * Activation memory of one training rank, per segment and micro-batch, before anything runs.
 *
 * The memory planner adds this to the model state (params, gradients, optimizer) to predict the
 * peak backend memory of a step. Every number comes from replaying the segment's code path on a
 * ledger of exact tensor sizes (trace.ts; the layers in host-layer-traces.ts and
 * tf-layer-traces.ts, the segments in segment-traces.ts): 4 bytes per float32 / int32 element,
 * 1 per bool, a reshape or share() free, a tf.tidy holding all its intermediates until it
 * returns. No constant is fitted; activation-memory.test.ts checks every field against the
 * memory meter (device/memory-meter.ts) on wasm and cpu.
 *
 * Notation: N = B*T rows, C width, H heads of size hs and F = 4C hidden (this rank's: H/tp, 4C/tp),
 * V vocabulary rows (this rank's), ctx = contextLength; sizes below in elements (x4 bytes unless
 * noted). Leading terms (what the planner should expect at scale):
 *
 *   tf kernels (the GPU path)
 *     block   saved   ln_1 norm+y, q k v, attn y, ln_2 norm+y, fc y, gelu y: 8NC + 2NF/... = 8NC + 2NF... exactly
 *                     2NC (ln_1) + 3NC (q,k,v) + NC (attn y) + 2NC (ln_2) + 2NF (fc y, gelu y) + 2N (rstd) + BHT^2 (P)
 *             forward peak  max(gelu's tidy: saved-so-far + 7NF, attention's tidy: + 8NC + 4BHT^2, ...)
 *             backward peak gelu backward's tidy (15NF) or attention backward's tidy (12NC + 4BHT^2 + BHT)
 *     head    saved   ln_f norm+y (2NC+N), probs NV, target ids N
 *             forward peak  the loss tidy: logits, logp, oneHot int32, oneHot float, onehot, onehot*logp, probs:
 *                           7NV (6NV on cpu, whose cast shares) + 2NC + ...
 *             backward peak 6NV (5NV on cpu) + NC + VC + ...
 *     embedding saved ids N (int32); backward dwte VC + dwpe ctx*C (gradients, kept)
 *   host kernels (wasm / cpu)
 *     block   saved   ln mean/rstd (4N), qkv 3NC, P BHT^2, attn y NC, ln_2 y NC, fc y NF, gelu s + y 2NF,
 *                     and (shared) ln_1 y, x2: ... see segment-traces.ts
 *     head    saved   probs NV, ln_f y, mean, rstd; forward peak 2NV; backward dlogits NV (SIMD) + ...
 *
 * The exact per-tensor lists are in the doc comments of host-layer-traces.ts and tf-layer-traces.ts.
 */
import type { GPTConfig } from '../config.js';
import type { KernelSet } from '../layers/layer-set.js';
import { checkTensorParallel, splitRange } from '../tensor-parallel/tp-layout.js';
import { hostLayerTraces } from './host-layer-traces.js';
import type { LayerTraces, TracedSaved } from './layer-traces.js';
import { blockForward, embeddingForward, headForward, type SegmentDims } from './segment-traces.js';
import { tfLayerTraces } from './tf-layer-traces.js';
import { MemoryTrace, type Ref, type TraceBackend } from './trace.js';

export interface ActivationShape {
  /** Sequences per micro-batch (B). */
  batch: number;
  /** Tokens per sequence (T). */
  seqLen: number;
  kernels: KernelSet;
  /** Tensor-parallel size: heads, MLP hidden and vocabulary split over tp ranks (local shard sizes). */
  tp: number;
  /** Host kernels on wasm with the SIMD module (fused attention where shapes allow); default false. */
  simd?: boolean;
  /** This rank in its tensor-parallel group (its vocabulary rows; rank 0 holds the most); default 0. */
  tpRank?: number;
  /**
   * The TF.js backend, which decides only whether tf.cast copies: 'wasm' copies, 'cpu' shares its
   * input's buffer when casting to float32, TensorFlow forwards its input when the dtype stays.
   * Default: 'tensorflow' for the tf kernel set (the GPU path), 'wasm' for the host one.
   */
  backend?: TraceBackend;
}

export type SegmentKind = 'embedding' | 'block' | 'head';

/** Bytes, per micro-batch, of one segment of one rank. */
export interface SegmentMemory {
  /** What forward(train=true) keeps for backward (the `saved` state), beyond its output. */
  saved: number;
  /** The output activation y (0 for the head). */
  output: number;
  /**
   * The input activation the saved state keeps alive after the caller drops the input (a share
   * of it, e.g. the host LayerNorm's x): 0, or the input's bytes. Add it to `saved` when the
   * caller frees inputs after forward (segment-runner does).
   */
  savedInput: number;
  /** The most bytes alive at once during forward(train=true) above what was alive before the call (params and input excluded: they exist before); at least saved + output. */
  forwardPeak: number;
  /** The most bytes alive at once during backward above what was alive before the call (saved, dy, params exist before). */
  backwardPeak: number;
  /** What backward leaves alive after it returns, above before (its dx, and with tf kernels its parameter-gradient tensors), minus the saved state it releases (savedInput included). */
  backwardNet: number;
  /** The same forward with train=false (evaluation): peak above before. */
  evalPeak: number;
  /** Which allocation reached each peak (for explaining a plan). */
  peakAt: { forward: string; backward: string; eval: string };
}

/** One rank's sizes from the config and the shape (throws TRAINER_ERR_TP_INDIVISIBLE as GPTSegments would). */
export function segmentDims(config: GPTConfig, shape: ActivationShape): SegmentDims {
  const { batch: B, seqLen: T, tp } = shape;
  if (tp > 1) checkTensorParallel(config, tp);
  if (T > config.contextLength) throw new Error(`seqLen ${T} is longer than the context length ${config.contextLength}`);
  const [v0, v1] = splitRange(config.vocabSize, tp, shape.tpRank ?? 0);
  return {
    B,
    T,
    N: B * T,
    C: config.dModel,
    H: config.heads / tp,
    hs: config.dModel / config.heads,
    F: (4 * config.dModel) / tp,
    V: v1 - v0,
    ctx: config.contextLength,
    tp,
  };
}

function layerTraces(shape: ActivationShape): LayerTraces {
  return shape.kernels === 'host' ? hostLayerTraces(shape.simd ?? false) : tfLayerTraces();
}

function traceBackend(shape: ActivationShape): TraceBackend {
  return shape.backend ?? (shape.kernels === 'tf' ? 'tensorflow' : 'wasm');
}

/** A segment's forward on a trace: its output (null for the head) and saved state. */
function runForward(t: MemoryTrace, kind: SegmentKind, L: LayerTraces, x: Ref | null, d: SegmentDims, train: boolean): { y: Ref | null; saved: TracedSaved | null } {
  if (kind === 'embedding') return embeddingForward(t, L, d, train);
  if (kind === 'block') return blockForward(t, L, x!, d, train);
  return { y: null, ...headForward(t, L, x!, d, train) };
}

/**
 * Bytes of one segment of one rank, per micro-batch: what its forward keeps and allocates at
 * most, what its backward allocates at most and leaves, and the evaluation forward's peak.
 */
export function segmentMemory(config: GPTConfig, kind: SegmentKind, shape: ActivationShape): SegmentMemory {
  const d = segmentDims(config, shape);
  const L = layerTraces(shape);
  const inputBytes = kind === 'embedding' ? 0 : 4 * d.N * d.C;

  // Training forward: the input exists before (the previous segment's output, or token ids on the host).
  const t = new MemoryTrace(traceBackend(shape));
  const x = kind === 'embedding' ? null : t.alloc('input x [B,T,C]', d.N * d.C);
  t.mark();
  const f = runForward(t, kind, L, x, d, true);
  const forward = t.peakAbove();
  const output = f.y ? f.y.buffer.bytes : 0;
  const saved = t.now() - output;
  // The caller drops its input (the saved state may keep it) and hands y on.
  t.mark();
  t.dispose(x, f.y);
  const savedInput = inputBytes + t.now() + output;

  // Backward: saved, dy [B,T,C] (none for the head: it starts from the loss) and params exist before.
  const dy = kind === 'head' ? null : t.alloc('dy [B,T,C]', d.N * d.C);
  t.mark();
  f.saved!.backward(dy);
  const backward = t.peakAbove();
  const backwardNet = t.now();

  // Evaluation forward.
  const e = new MemoryTrace(traceBackend(shape));
  const ex = kind === 'embedding' ? null : e.alloc('input x [B,T,C]', d.N * d.C);
  e.mark();
  runForward(e, kind, L, ex, d, false);
  const evaluation = e.peakAbove();

  return {
    saved,
    output,
    savedInput,
    forwardPeak: forward.bytes,
    backwardPeak: backward.bytes,
    backwardNet,
    evalPeak: evaluation.bytes,
    peakAt: { forward: forward.at, backward: backward.at, eval: evaluation.at },
  };
}

/** A block under activation checkpointing (segment-runner.ts: checkpointActivations). */
export interface RecomputeMemory {
  /** Kept from the first forward to the backward: the block's input [B,T,C]. */
  checkpoint: number;
  /** The first forward (train=false): peak above before (the input exists). */
  forwardPeak: number;
  /**
   * In backward: the forward again with train=true (its y dropped at once, then the checkpointed
   * input), then the block's backward: the most bytes alive above before (checkpoint, dy and
   * params exist before).
   */
  backwardPeak: number;
  /** After the backward, above before: dx (and tf kernels' gradient tensors) minus the checkpoint. */
  backwardNet: number;
  peakAt: { forward: string; backward: string };
}

export function recomputeMemory(config: GPTConfig, shape: ActivationShape): RecomputeMemory {
  const d = segmentDims(config, shape);
  const L = layerTraces(shape);
  const first = new MemoryTrace(traceBackend(shape));
  const x0 = first.alloc('input x [B,T,C]', d.N * d.C);
  first.mark();
  blockForward(first, L, x0, d, false);
  const forward = first.peakAbove();

  const t = new MemoryTrace(traceBackend(shape));
  const x = t.alloc('checkpointed input x [B,T,C]', d.N * d.C);
  const dy = t.alloc('dy [B,T,C]', d.N * d.C);
  t.mark();
  const f = t.named('recompute', () => blockForward(t, L, x, d, true));
  t.dispose(f.y, x);
  f.saved!.backward(dy);
  const backward = t.peakAbove();
  return {
    checkpoint: 4 * d.N * d.C,
    forwardPeak: forward.bytes,
    backwardPeak: backward.bytes,
    backwardNet: t.now(),
    peakAt: { forward: forward.at, backward: backward.at },
  };
}

/**
 * The micro-batch's uploads: token ids and targets, int32 [B*T] each, with the tf kernel set
 * (kept in the embedding's and the head's saved state, so already inside segmentMemory().saved).
 * The host kernels read both from host arrays (the SIMD head uploads the targets as float [B*T]
 * for a moment in backward, inside backwardPeak).
 */
export function batchUploadBytes(shape: ActivationShape): { tokens: number; targets: number } {
  const n = shape.kernels === 'tf' ? 4 * shape.batch * shape.seqLen : 0;
  return { tokens: n, targets: n };
}

/**
 * The tf kernel set's cached device constants (layers/constants.ts), kept for the process: the
 * causal mask [T, T] per distinct sequence length, and one scalar per distinct value (LayerNorm
 * eps, the attention scale, four GELU coefficients, int32 0; and the vocab-parallel layers'
 * shard bounds). Host kernels keep none.
 */
export function kernelConstantBytes(config: GPTConfig, shape: ActivationShape): number {
  if (shape.kernels !== 'tf') return 0;
  const hs = config.dModel / config.heads;
  const K = Math.sqrt(2 / Math.PI);
  const A = 0.044715;
  const keys = new Set([config.layerNormEps, 1 / Math.sqrt(hs), 2 * K, A, 1, 3 * A].map((v) => `f${v}`));
  keys.add('i0');
  if (shape.tp > 1) {
    const [v0, v1] = splitRange(config.vocabSize, shape.tp, shape.tpRank ?? 0);
    for (const v of [v0, v1 - v0, v1 - v0 - 1]) keys.add(`i${v}`);
  }
  return 4 * shape.seqLen * shape.seqLen + 4 * keys.size;
}
