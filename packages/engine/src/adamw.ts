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
 * The optimizer owns the state for one contiguous range [start, end) of the model's flat
 * parameter vector: the whole vector for plain data parallelism, one partition under ZeRO.
 */
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
    this.decaySegments = decayRanges
      .map((r) => ({ start: Math.max(r.start, owned.start) - owned.start, end: Math.min(r.end, owned.end) - owned.start }))
      .filter((r) => r.end > r.start)
      .sort((a, b) => a.start - b.start);
  }

  /**
   * One update of `params` (the owned range, length end - start) from `grads` (same length).
   * Both are views: the caller passes `flat.subarray(start, end)`.
   */
  update(params: Float32Array, grads: Float32Array, lr: number): void {
    const n = this.end - this.start;
    if (params.length !== n || grads.length !== n) {
      throw new RangeError(`AdamW.update: expected ${n} elements, got params ${params.length}, grads ${grads.length}`);
    }
    this.updateChunks([{ offset: 0, params, grads }], lr);
  }

  /**
   * One update taken in pieces: chunk k covers owned elements [offset, offset + params.length),
   * its params and grads being views of that length wherever they live (ZeRO stages 1-2 update
   * their pieces in place inside the full parameter vector). The chunks must not overlap.
   */
  updateChunks(chunks: readonly { offset: number; params: Float32Array; grads: Float32Array }[], lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const k = { lr, bc1: 1 - beta1 ** this.step, bc2: 1 - beta2 ** this.step, beta1, beta2, eps };
    for (const c of chunks) {
      const from = c.offset;
      const to = c.offset + c.params.length;
      if (c.grads.length !== c.params.length || from < 0 || to > this.end - this.start) {
        throw new RangeError(`AdamW.updateChunks: chunk [${from}, ${to}) with ${c.grads.length} grads is outside the owned ${this.end - this.start} elements`);
      }
      // Walk [from, to) as alternating no-decay / decay segments.
      let pos = from;
      for (const seg of this.decaySegments) {
        if (seg.end <= pos) continue;
        if (seg.start >= to) break;
        if (seg.start > pos) this.updateSegment(c.params, c.grads, from, pos, seg.start, 0, k);
        const e = Math.min(seg.end, to);
        this.updateSegment(c.params, c.grads, from, Math.max(seg.start, pos), e, weightDecay, k);
        pos = e;
      }
      if (pos < to) this.updateSegment(c.params, c.grads, from, pos, to, 0, k);
    }
  }

  // Kept as one tight monomorphic loop: this runs over every parameter every step.
  // Owned elements [from, to); p and g are views whose element 0 is owned element `base`.
  private updateSegment(
    p: Float32Array, g: Float32Array, base: number, from: number, to: number, wd: number,
    k: { lr: number; bc1: number; bc2: number; beta1: number; beta2: number; eps: number },
  ): void {
    const m = this.m;
    const v = this.v;
    const { beta1, beta2, eps } = k;
    const c1 = 1 - beta1;
    const c2 = 1 - beta2;
    const stepSize = k.lr / k.bc1;
    const invSqrtBc2 = 1 / Math.sqrt(k.bc2);
    const decay = k.lr * wd;
    for (let i = from; i < to; i++) {
      const j = i - base;
      const gi = g[j];
      const mi = beta1 * m[i] + c1 * gi;
      const vi = beta2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const pi = p[j];
      // Decoupled decay uses the parameter before this step's Adam update, as PyTorch does.
      p[j] = pi - decay * pi - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
    }
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
