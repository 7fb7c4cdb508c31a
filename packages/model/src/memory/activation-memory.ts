/**
 * Activation memory of one training rank, per segment and micro-batch, from shapes alone: what
 * each segment of segments.ts keeps for backward and allocates at most, for both kernel sets.
 * The memory planner adds it to the model state (params, gradients, optimizer).
 *
 * Every number is the replay of the segment's code path on a ledger of exact tensor sizes
 * (trace.ts; the layers in host-layer-traces.ts and tf-layer-traces.ts, which list every tensor;
 * the segments in segment-traces.ts): 4 bytes per float32 / int32 element, 1 per bool, a reshape
 * or share() free, a tf.tidy holding all its intermediates until it returns. Nothing is fitted;
 * activation-memory.test.ts checks every field against the memory meter on wasm and cpu.
 *
 * Closed forms, tp = 1, in elements (x4 bytes; bool 1 byte), with N = B*T rows, C width, F = 4C
 * the MLP width, V vocabulary, P = B*H*T^2 attention probabilities, ctx the context length.
 * A Llama block is estimated with the GPT-2 block's trace at its own F (ffnHidden): an
 * approximation (SwiGLU keeps two [N, F] inputs where GELU keeps one, RoPE and repeat_kv add
 * [N, C]-sized temporaries) that the memory meter has not checked; GPT-2's are exact.
 * With tp > 1 the attention terms (q, k, v, attention y, P), F and V are this rank's shard, and
 * every all-reduce uploads an [N, C] copy (tensor-parallel/mappings.ts). Peaks are a max over the
 * moments of the replay; listed are those that win at training shapes (N >= C), checked in the
 * test; the replay computes the exact max for any shape.
 *
 *   tf kernels (TF.js ops: the GPU path; each large intermediate freed as soon as it is dead)
 *     embedding  output NC; saved token ids N (int32)
 *                forward  2NC + TC + N                 ids, wte rows, wpe[:T], y
 *                backward VC + ctx*C                   dwpe (made first: its [T,C] batch sum is
 *                                                      freed by then), dwte; both gradients stay
 *     block      output NC; saved 8NC + 2NF + 2N + P: ln_1 norm and y (c_attn's input), q (scaled),
 *                k, v [B,H,T,hs], attention y (c_proj's input; attention's own share of it costs
 *                nothing), ln_2 norm and y, fc y and gelu y (their consumers' inputs), rstd x2, P
 *                forward  max(9NC + 3NF + 2N + P,      gelu's chain: two [N,F] beside fc y (the
 *                                                      block frees each layer's output once used)
 *                             8NC + N + 2P)            attention: S + mask and P (two [B,H,T,T])
 *                                                      beside q, k, v, over ln_1 and qkv
 *                backward max(FC + C + 4NF,            gelu backward: x du, s, 1 - s and their
 *                                                      product [N,F], over mlp.c_proj's gradients
 *                             2FC + C^2 + F + 4C + 2P + B*H*T - 2NF - NC - N)
 *                                                      attention backward: dP - D and dS beside the
 *                                                      saved P, over the gradients so far (the
 *                                                      MLP's activations freed by then)
 *                eval     max(NC + 3NF, 4NC + 2P)
 *     head       saved 2NC + N + NV + N(int32): ln_f norm and y, rstd, probs, target ids
 *                forward  2NV + 2NC + 7N               exp and probs, with the ln_f outputs, rstd,
 *                                                      ids, (row, target) pairs 2N, mask, target
 *                                                      logit, sum (cpu, whose casts share: 6N + N/4)
 *                backward max(NV + 6N + 1,             probs - onehot beside the saved probs (freed
 *                                                      at once); cpu 5N + N/4 + 1
 *                             VC + 2NC + 4N + 1)       dwte, dx and x * row factor; cpu 3N + N/4 + 1
 *                eval     2NV + NC + 5N                shifted logits and exp (cpu 4N + N/4)
 *   host kernels (wasm, cpu)
 *     embedding  output NC, the forward's peak; saved nothing on the backend; backward adds into host arrays
 *     block      output NC; saved 7NC + 3NF + 4N + P: ln_1 y, qkv, attention y, x2, ln_2 y (each a
 *                share held as the next layer's input), fc y, gelu y and sigmoid, mean and rstd x2,
 *                P; savedInput NC (ln_1 keeps the block's input)
 *                forward  9NC + 3NF + 4N + P           at the block's output (21NC + 4N + P at F = 4C)
 *                backward max(NF + FC,                 mlp.c_proj's dx and dW (2NF + FC without the
 *                                                      SIMD GEMMs: and X^T)
 *                             3P + 2NC - 3NF - 2N)     per-pair attention's P^T, dP, dS and dS^T, the
 *                                                      MLP's activations freed by then (fused: no term)
 *                eval     max(NC + 3NF,                gelu (y and sigmoid)
 *                             4NC + P + 4T hs + T^2,   fused attention: y, P, per-pair scratch
 *                             6NC + P)                 per-pair attention: Qs, Kt, V, S
 *     head       saved NC + 2N + NV (ln_f y, mean, rstd, probs); savedInput NC
 *                forward  2NV + NC + 2N                logits and probs
 *                backward NV + NC + VC (SIMD: dlogits, dx, dwte), 2NC + 2VC otherwise (dlogits in
 *                         place; dx, x^T, dwte^T, dwte)
 *     The host vocab-parallel head keeps its probabilities [N, V/tp] in a host array: not backend.
 *
 * Not modelled: scratch a backend kernel allocates and frees inside itself (invisible to the
 * meter too); the tf head's 4-byte loss scalar lives until the loss is read (freed here at once).
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from '../codes.js';
import { ffnHiddenOf, validateConfig, type GPTConfig } from '../config.js';
import { GELU_A, GELU_K } from '../layers/gelu.js';
import type { KernelSet } from '../layers/layer-set.js';
import { checkTensorParallel, splitRange } from '../tensor-parallel/tp-layout.js';
import { hostLayerTraces } from './host-layer-traces.js';
import type { LayerTraces, TracedSaved } from './layer-traces.js';
import { blockForward, embeddingForward, headForward, type SegmentDims } from './segment-traces.js';
import { tfLayerTraces } from './tf-layer-traces.js';
import { MemoryTrace, type Ref, type TensorBytes, type TraceBackend } from './trace.js';

export type { TensorBytes, TraceBackend } from './trace.js';

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
   * The TF.js backend; it decides only whether tf.cast copies: wasm copies, cpu returns its
   * input's buffer when casting to float32, TensorFlow forwards its input when the dtype stays.
   * Default: 'tensorflow' for the tf kernel set (the GPU path), 'wasm' for the host one.
   */
  backend?: TraceBackend;
}

export type SegmentMemoryKind = 'embedding' | 'block' | 'head';

/** Bytes, per micro-batch, of one segment of one rank. */
export interface SegmentMemory {
  /** What forward(train=true) keeps for backward (the `saved` state), beyond its output. */
  saved: number;
  /** The output activation y (0 for the head). */
  output: number;
  /**
   * The input the saved state keeps alive after the caller drops it (a share of it, as the host
   * LayerNorm's x): 0 or the input's bytes. segment-runner drops inputs after forward, so per
   * segment and micro-batch in flight the chain holds saved + savedInput.
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
  /**
   * The parameter-gradient tensors backward hands to the gradient buffers (tf kernels; host
   * kernels download theirs): inside backwardNet and, from the moment they are made, backwardPeak.
   * A planner that counts gradient buffers as model state counts these bytes there.
   */
  gradients: number;
  /** The allocation that reached each peak ('block.mlp.gelu: y [n]'), to explain a plan. */
  peakAt: { forward: string; backward: string; eval: string };
}

/** What SegmentMemory's numbers are made of: tensors (labelled by layer and shape), largest first. */
export interface SegmentMemoryDetail {
  /** The saved state's tensors (they add up to `saved`). */
  saved: TensorBytes[];
  /** The tensors the forward has made and holds at its peak (they add up to `forwardPeak`). */
  forwardPeak: TensorBytes[];
  /** The tensors backward has made and holds at its peak; `backwardPeak` is their sum minus the saved tensors released by then. */
  backwardPeak: TensorBytes[];
  /** The evaluation forward's tensors at its peak (they add up to `evalPeak`). */
  evalPeak: TensorBytes[];
}

/** One rank's sizes; throws as GPTSegments would (TRAINER_ERR_TP_INDIVISIBLE, TRAINER_ERR_MODEL_INPUT). */
export function segmentDims(config: GPTConfig, shape: ActivationShape): SegmentDims {
  const { batch: B, seqLen: T, tp } = shape;
  validateConfig(config);
  checkTensorParallel(config, tp);
  for (const [name, v, max] of [['batch', B, Infinity], ['seqLen', T, config.contextLength]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new TrainerError(ModelErrorCode.MODEL_INPUT, `${name} must be an integer in [1, ${max}], got ${String(v)}`, {
        hint: name === 'seqLen' ? 'sequences are at most the context length' : 'sequences per micro-batch',
        details: { [name]: v },
      });
    }
  }
  const rank = shape.tpRank ?? 0;
  if (!Number.isInteger(rank) || rank < 0 || rank >= tp) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `tpRank must be an integer in [0, ${tp}), got ${String(rank)}`, { hint: 'the rank within its tensor-parallel group' });
  }
  const [v0, v1] = splitRange(config.vocabSize, tp, rank);
  return { B, T, N: B * T, C: config.dModel, H: config.heads / tp, hs: config.dModel / config.heads, F: ffnHiddenOf(config) / tp, V: v1 - v0, ctx: config.contextLength, tp };
}

function layerTraces(shape: ActivationShape): LayerTraces {
  return shape.kernels === 'host' ? hostLayerTraces(shape.simd ?? false) : tfLayerTraces();
}

function traceBackend(shape: ActivationShape): TraceBackend {
  return shape.backend ?? (shape.kernels === 'tf' ? 'tensorflow' : 'wasm');
}

/** A segment's forward on a trace: its output (null for the head) and saved state. */
function runForward(t: MemoryTrace, kind: SegmentMemoryKind, L: LayerTraces, x: Ref | null, d: SegmentDims, train: boolean): { y: Ref | null; saved: TracedSaved | null } {
  if (kind === 'embedding') return embeddingForward(t, L, d, train);
  if (kind === 'block') return blockForward(t, L, x!, d, train);
  return { y: null, ...headForward(t, L, x!, d, train) };
}

/** Forward, the caller dropping the input, backward; and an evaluation forward: numbers and what made them. */
function traceSegment(config: GPTConfig, kind: SegmentMemoryKind, shape: ActivationShape): { memory: SegmentMemory; detail: SegmentMemoryDetail } {
  const d = segmentDims(config, shape);
  const L = layerTraces(shape);
  const input = (t: MemoryTrace) => (kind === 'embedding' ? null : t.alloc('input x [B,T,C]', d.N * d.C)); // the previous segment's y

  const t = new MemoryTrace(traceBackend(shape));
  const x = input(t);
  t.mark();
  const f = runForward(t, kind, L, x, d, true);
  const forwardPeak = t.peakAbove();
  const forwardTensors = t.peakTensors();
  const output = f.y?.buffer.bytes ?? 0;
  const saved = t.now() - output;
  const savedTensors = t.newTensors([f.y]);
  const forwardAt = t.peakAt();
  // segment-runner drops the input after forward and hands y on; the saved state may hold the input.
  t.mark();
  t.dispose(x, f.y);
  const savedInput = (x?.buffer.bytes ?? 0) + output + t.now();

  const dy = kind === 'head' ? null : t.alloc('dy [B,T,C]', d.N * d.C); // the head starts from the loss
  t.mark();
  const { grads } = f.saved!.backward(dy);
  const backwardPeak = t.peakAbove();
  const backwardTensors = t.peakTensors();
  const backwardAt = t.peakAt();
  const backwardNet = t.now();

  const e = new MemoryTrace(traceBackend(shape));
  const ex = input(e);
  e.mark();
  runForward(e, kind, L, ex, d, false);

  return {
    memory: {
      saved,
      output,
      savedInput,
      forwardPeak,
      backwardPeak,
      backwardNet,
      evalPeak: e.peakAbove(),
      gradients: grads.reduce((n, g) => n + g.buffer.bytes, 0),
      peakAt: { forward: forwardAt, backward: backwardAt, eval: e.peakAt() },
    },
    detail: { saved: savedTensors, forwardPeak: forwardTensors, backwardPeak: backwardTensors, evalPeak: e.peakTensors() },
  };
}

/**
 * Bytes of one segment of one rank, per micro-batch: what its forward keeps and allocates at
 * most, what its backward allocates at most and leaves, and the evaluation forward's peak.
 */
export function segmentMemory(config: GPTConfig, kind: SegmentMemoryKind, shape: ActivationShape): SegmentMemory {
  return traceSegment(config, kind, shape).memory;
}

/** The tensors behind segmentMemory's saved bytes and peaks (to explain a plan line by line). */
export function segmentMemoryDetail(config: GPTConfig, kind: SegmentMemoryKind, shape: ActivationShape): SegmentMemoryDetail {
  return traceSegment(config, kind, shape).detail;
}

/** A block under activation checkpointing (segment-runner.ts: checkpointActivations). */
export interface RecomputeMemory {
  /** Kept from the first forward to the backward: the block's input [B,T,C]. */
  checkpoint: number;
  /** The first forward (train=false): peak above before (= segmentMemory's evalPeak). */
  forwardPeak: number;
  /**
   * In backward: the forward again with train=true (its y dropped at once, then the checkpointed
   * input), then the block's backward: the most bytes alive above before (checkpoint, dy and
   * params exist before).
   */
  backwardPeak: number;
  /** After that backward, above before: dx (and tf kernels' gradient tensors) minus the checkpoint. */
  backwardNet: number;
}

export function recomputeMemory(config: GPTConfig, shape: ActivationShape): RecomputeMemory {
  const d = segmentDims(config, shape);
  const L = layerTraces(shape);
  const t = new MemoryTrace(traceBackend(shape));
  const x = t.alloc('checkpointed input x [B,T,C]', d.N * d.C);
  const dy = t.alloc('dy [B,T,C]', d.N * d.C);
  t.mark();
  const f = t.named('recompute', () => blockForward(t, L, x, d, true));
  t.dispose(f.y, x);
  f.saved!.backward(dy);
  return { checkpoint: 4 * d.N * d.C, forwardPeak: segmentMemory(config, 'block', shape).evalPeak, backwardPeak: t.peakAbove(), backwardNet: t.now() };
}

/**
 * The micro-batch's uploads with the tf kernel set: token ids and targets, int32 [B*T] each,
 * kept from forward to backward by the embedding and the head (so already in their `saved`).
 * The host kernels read both from host arrays (the SIMD head uploads the targets as float [B*T]
 * for a moment in backward: inside its backwardPeak).
 */
export function batchUploadBytes(shape: ActivationShape): { tokens: number; targets: number } {
  const n = shape.kernels === 'tf' ? 4 * shape.batch * shape.seqLen : 0;
  return { tokens: n, targets: n };
}

/**
 * The tf kernel set's cached device constants (layers/constants.ts), kept for the process and
 * not part of any segment: the causal mask [T, T] per distinct sequence length, the head's row
 * numbers int32 [B*T, 1] per distinct micro-batch size, and a scalar per distinct value (LayerNorm
 * eps, the attention scale, GELU's 2k, 2kA and 6kA and 1, int32 0, and the vocab-parallel shard
 * bounds v0, Vt, Vt - 1). Host kernels keep none.
 */
export function kernelConstantBytes(config: GPTConfig, shape: ActivationShape): number {
  if (shape.kernels !== 'tf') return 0;
  const hs = config.dModel / config.heads;
  const gelu = [2 * GELU_K, 2 * GELU_K * GELU_A, 6 * GELU_K * GELU_A, 1];
  const keys = new Set([config.layerNormEps, 1 / Math.sqrt(hs), ...gelu].map((v) => `float32 ${v}`));
  keys.add('int32 0');
  if (shape.tp > 1) {
    const [v0, v1] = splitRange(config.vocabSize, shape.tp, shape.tpRank ?? 0);
    for (const v of [v0, v1 - v0, v1 - v0 - 1]) keys.add(`int32 ${v}`);
  }
  return 4 * shape.seqLen * shape.seqLen + 4 * shape.batch * shape.seqLen + 4 * keys.size;
}
