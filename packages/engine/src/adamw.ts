/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization") on flat fp32 arrays.
 *
 * For every element i of the range this optimizer owns:
 *   m_i <- b1 m_i + (1 - b1) g_i
 *   v_i <- b2 v_i + (1 - b2) g_i^2
 *   p_i <- p_i - lr * ( (m_i / (1 - b1^t)) / (sqrt(v_i / (1 - b2^t)) + eps) + wd_i p_i )
 * with wd_i = weightDecay for elements inside a decay range (2-D weights, as in GPT-2/nanoGPT)
 * and 0 elsewhere (biases, LayerNorm, ...). This is exactly torch.optim.AdamW's update order.
 *
 * Host arrays here (adamwUpdate); on a TF.js backend the same update runs as tensor ops
 * (device/tf-device.ts).
 */
import type { AdamWStep } from './device/device.js';

export interface AdamWConfig {
  /** Exponential decay of the first moment (PyTorch default 0.9). */
  beta1: number;
  /** Exponential decay of the second moment (GPT-2/nanoGPT use 0.95). */
  beta2: number;
  /** Added to the denominator for numerical stability. */
  eps: number;
  /** Decoupled weight decay coefficient, applied only inside `decayRanges`. */
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export interface Range {
  start: number;
  end: number;
}

/** Serializable optimizer state (for checkpoints). */
export interface AdamWState {
  step: number;
  start: number;
  end: number;
  m: Float32Array;
  v: Float32Array;
}

/** The coefficients of update number `t` (1-based) at learning rate `lr`, gradients multiplied by `gradFactor`. */
export function adamwStep(config: AdamWConfig, t: number, lr: number, gradFactor = 1): AdamWStep {
  return { ...config, lr, bc1: 1 - config.beta1 ** t, bc2: 1 - config.beta2 ** t, gradFactor };
}

/**
 * One update of equal-length host arrays (a piece of the parameters and its state), in place:
 * `decay` lists the ranges (relative to the arrays) that get weight decay. The grads array may
 * be scaled in place by h.gradFactor (it is dead after the update).
 */
export function adamwUpdate(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, decay: readonly Range[], h: AdamWStep): void {
  const n = p.length;
  if (m.length !== n || v.length !== n || g.length !== n) {
    throw new RangeError(`adamwUpdate: params ${n}, m ${m.length}, v ${v.length}, grads ${g.length} elements`);
  }
  if (h.gradFactor !== 1) for (let i = 0; i < n; i++) g[i] *= h.gradFactor;
  // Walk [0, n) as alternating no-decay / decay segments.
  let pos = 0;
  for (const seg of decay) {
    if (seg.end <= pos) continue;
    if (seg.start >= n) break;
    if (seg.start > pos) updateSegment(p, m, v, g, pos, seg.start, 0, h);
    const e = Math.min(seg.end, n);
    updateSegment(p, m, v, g, Math.max(seg.start, pos), e, h.weightDecay, h);
    pos = e;
  }
  if (pos < n) updateSegment(p, m, v, g, pos, n, 0, h);
}

// Kept as one tight monomorphic loop: this runs over every parameter every step.
function updateSegment(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, from: number, to: number, wd: number, h: AdamWStep): void {
  const { beta1, beta2, eps } = h;
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  const stepSize = h.lr / h.bc1;
  const invSqrtBc2 = 1 / Math.sqrt(h.bc2);
  const decay = h.lr * wd;
  for (let i = from; i < to; i++) {
    const gi = g[i];
    const mi = beta1 * m[i] + c1 * gi;
    const vi = beta2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i];
    // Decoupled decay uses the parameter before this step's Adam update, as PyTorch does.
    p[i] = pi - decay * pi - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}

/**
 * AdamW over one contiguous range [start, end) of a flat vector, with its own m, v and step
 * count (a standalone optimizer, e.g. for tests; the engine keeps its state per piece on a Device).
 */
export class AdamW {
  readonly config: AdamWConfig;
  readonly start: number;
  readonly end: number;
  /** First moment for [start, end). */
  readonly m: Float32Array;
  /** Second moment for [start, end). */
  readonly v: Float32Array;
  /** Number of updates taken so far (t in the bias corrections). */
  step = 0;
  /** Sub-ranges of [start, end) that receive weight decay, relative to `start`, sorted. */
  private readonly decaySegments: Range[];

  constructor(config: AdamWConfig, owned: Range, decayRanges: readonly Range[]) {
    this.config = config;
    this.start = owned.start;
    this.end = owned.end;
    this.m = new Float32Array(owned.end - owned.start);
    this.v = new Float32Array(owned.end - owned.start);
    this.decaySegments = clipRanges(decayRanges, owned);
  }

  /** One update of `params` (the owned range, length end - start) from `grads` (same length). */
  update(params: Float32Array, grads: Float32Array, lr: number): void {
    this.step += 1;
    adamwUpdate(params, this.m, this.v, grads, this.decaySegments, adamwStep(this.config, this.step, lr));
  }

  state(): AdamWState {
    return { step: this.step, start: this.start, end: this.end, m: this.m, v: this.v };
  }

  loadState(state: AdamWState): void {
    if (state.start !== this.start || state.end !== this.end) {
      throw new RangeError(`AdamW.loadState: state covers [${state.start}, ${state.end}), optimizer owns [${this.start}, ${this.end})`);
    }
    this.m.set(state.m);
    this.v.set(state.v);
    this.step = state.step;
  }
}

/** `ranges` cut to `within` and made relative to its start, sorted. */
export function clipRanges(ranges: readonly Range[], within: Range): Range[] {
  return ranges
    .map((r) => ({ start: Math.max(r.start, within.start) - within.start, end: Math.min(r.end, within.end) - within.start }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
}
