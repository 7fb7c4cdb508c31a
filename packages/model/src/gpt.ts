/**
 * GPT-2 as one object for single-process use (evaluation, sampling, tests, benchmarks): token +
 * position embedding, `layers` pre-LayerNorm blocks, final LayerNorm, output head tied to wte,
 * mean cross-entropy. It is GPTSegments (segments.ts) over the whole model with every unit's
 * parameters resident: the same layers, driven by the same segment chain as training, so there is
 * one forward/backward path. Parameters come and go as one flat fp32 vector (paramLayout); reads
 * from the backend are awaited, never synchronous.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig } from './config.js';
import { HostGradients } from './host-gradients.js';
import type { Saved } from './layers/layer.js';
import type { KernelSet } from './layers/layer-set.js';
import type { ParamLayout } from './layout.js';
import { paramLayout } from './layout.js';
import type { GenerateOptions } from './model-input.js';
import { checkBatch, checkGenerate, checkGrads, checkParams } from './model-input.js';
import type { UnitParams } from './model-params.js';
import { Rng } from './prng.js';
import type { Profiler } from './profiler.js';
import { sampleToken } from './sampling.js';
import { GPTSegments } from './segments.js';

export interface GPTOptions {
  /** Kernel set; default: chosen from the active TF.js backend (layers/layer-set.ts). */
  kernels?: KernelSet;
  /** Collects ms per phase (benchmarks). */
  profiler?: Profiler;
}

export interface LossResult {
  loss: number;
  count: number;
}

export class GPT {
  readonly config: GPTConfig;
  readonly layout: ParamLayout;
  /** The kernel set in use. */
  readonly kernels: KernelSet;
  private readonly segments: GPTSegments;
  private units: UnitParams[] | null = null;
  private disposed = false;
  /** The TF.js backend the model was built for (its kernels and tensors live there). */
  private readonly tfBackend: string;

  constructor(config: GPTConfig, options: GPTOptions = {}) {
    this.segments = new GPTSegments(config, { kernels: options.kernels, profiler: options.profiler });
    this.config = this.segments.config;
    this.layout = paramLayout(config);
    this.kernels = this.segments.kernels;
    this.tfBackend = tf.getBackend();
  }

  /** Uploads the flat vector (disposing the previous parameters). The array is copied. */
  setParams(flat: Float32Array): void {
    this.checkUsable();
    checkParams(flat, this.layout.totalSize);
    const next = this.segments.units.map((u, i) => this.segments.unitParams(i, flat.subarray(u.start, u.end)));
    this.units?.forEach((p) => p.dispose());
    this.units = next;
  }

  /** The current parameters as a fresh flat vector. */
  async getParams(): Promise<Float32Array> {
    const units = this.params();
    const flat = new Float32Array(this.layout.totalSize);
    let at = 0;
    for (const u of units) {
      for (const t of u.entryTensors) {
        flat.set((await t.data()) as Float32Array, at);
        at += t.size;
      }
    }
    return flat;
  }

  /**
   * One micro-batch: tokens/targets are [B*T] row-major (T <= contextLength), targets < 0 ignored.
   * Returns the mean cross-entropy over counted targets and the count; ADDS
   * gradScale * d(mean loss)/d(params) into grads (length layout.totalSize). `segments` [B*T]:
   * packed rows, a sequence id per token (layers/segment-mask.ts).
   */
  async forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, grads: Float32Array, gradScale = 1, segments?: Int32Array): Promise<LossResult> {
    const params = this.paramMap();
    checkBatch(this.config, tokens, batch, targets);
    checkGrads(grads, this.layout.totalSize, gradScale);
    const m = this.segments;
    const mb = { tokens, targets, batch, ...(segments ? { segments } : {}) };
    const saved: Saved[] = [];
    let x: tf.Tensor | null = null;
    let loss: { loss: Promise<number>; count: number } | undefined;
    try {
      for (let s = 0; s < m.segments.length; s++) {
        const r = await m.forward(s, params, x, mb, true);
        x?.dispose();
        x = r.y;
        saved.push(r.saved);
        if (r.loss) loss = r.loss;
      }
      const buffers = HostGradients.forUnits(m.units, grads);
      let dy: tf.Tensor | null = null;
      for (let s = m.segments.length - 1; s >= 0; s--) {
        const dx = await m.backward(s, params, saved[s], dy, gradScale, buffers);
        dy?.dispose();
        dy = dx;
      }
      dy?.dispose();
      await HostGradients.settle(buffers);
      return { loss: await loss!.loss, count: loss!.count };
    } finally {
      x?.dispose();
      for (const s of saved) s.release(); // no-op for consumed states; frees everything if a step threw
    }
  }

  /** Loss only (evaluation); same conventions as forwardBackward. */
  async loss(tokens: Int32Array, targets: Int32Array, batch: number, segments?: Int32Array): Promise<LossResult> {
    const params = this.paramMap();
    checkBatch(this.config, tokens, batch, targets);
    const m = this.segments;
    let x: tf.Tensor | null = null;
    let loss: { loss: Promise<number>; count: number } | undefined;
    try {
      for (let s = 0; s < m.segments.length; s++) {
        const r = await m.forward(s, params, x, { tokens, targets, batch, ...(segments ? { segments } : {}) }, false);
        r.saved.release();
        x?.dispose();
        x = r.y;
        if (r.loss) loss = r.loss;
      }
      return { loss: await loss!.loss, count: loss!.count };
    } finally {
      x?.dispose();
    }
  }

  /** Next-token logits for the LAST position of each sequence: [B, V] row-major. */
  async lastLogits(tokens: Int32Array, batch: number): Promise<Float32Array> {
    const params = this.paramMap();
    checkBatch(this.config, tokens, batch);
    const m = this.segments;
    let x: tf.Tensor | null = null;
    try {
      // Embedding and blocks; the head segment's ln_f and output projection without the loss.
      for (let s = 0; s < m.segments.length - 1; s++) {
        const r = await m.forward(s, params, x, { tokens, targets: tokens, batch }, false);
        r.saved.release();
        x?.dispose();
        x = r.y;
      }
      const logits = m.lastLogits(params, x!);
      try {
        return Float32Array.from((await logits.data()) as Float32Array);
      } finally {
        logits.dispose();
      }
    } finally {
      x?.dispose();
    }
  }

  /**
   * Autoregressive sampling: appends up to maxNewTokens ids to the prompt (cropping the context to
   * the last contextLength ids each step) and returns prompt + generated ids.
   */
  async generate(prompt: number[], opts: GenerateOptions): Promise<number[]> {
    checkGenerate(this.config, prompt, opts);
    const rng = new Rng(opts.seed ?? 0);
    const out = prompt.slice();
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const ctx = Int32Array.from(out.slice(-this.config.contextLength));
      const next = sampleToken(await this.lastLogits(ctx, 1), opts.temperature ?? 1, opts.topK, rng);
      out.push(next);
      if (opts.stopToken !== undefined && next === opts.stopToken) break;
    }
    return out;
  }

  dispose(): void {
    this.units?.forEach((p) => p.dispose());
    this.units = null;
    this.segments.dispose();
    this.disposed = true;
  }

  private params(): UnitParams[] {
    this.checkUsable();
    if (this.units === null) {
      throw new TrainerError(ModelErrorCode.MODEL_STATE, 'no parameters: call setParams first', {
        hint: 'model.setParams(initParams(config, seed)) or a loaded checkpoint',
      });
    }
    return this.units;
  }

  private paramMap(): Map<number, UnitParams> {
    return new Map(this.params().map((p, i) => [i, p] as const));
  }

  private checkUsable(): void {
    if (this.disposed) throw new TrainerError(ModelErrorCode.MODEL_STATE, 'the model was disposed', { hint: 'create a new GPT' });
    if (tf.getBackend() !== this.tfBackend) {
      throw new TrainerError(ModelErrorCode.MODEL_STATE, `the model was built on the '${this.tfBackend}' backend but '${tf.getBackend()}' is active`, {
        hint: 'call initBackend before creating the GPT and do not switch backends while it is in use',
      });
    }
  }
}
