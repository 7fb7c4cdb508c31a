/**
 * GPT-2: token + position embedding, `layers` pre-LayerNorm blocks, final LayerNorm, output head
 * tied to wte, mean cross-entropy. Parameters live in one flat fp32 vector (paramLayout); the
 * model keeps them as TF.js tensors between setParams calls, and backward adds gradients into a
 * caller-owned flat vector of the same layout.
 *
 * The whole-model calls compose the public layer pairs (Embedding, Block, LayerNorm, LMHead), so an
 * engine can also drive the model block by block (see `layerSet`, `params`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig } from './config.js';
import { validateConfig } from './config.js';
import { hostDownload, hostRead } from './host/tensor-io.js';
import { Block } from './layers/block.js';
import type { Saved, ParamGrads } from './layers/layer.js';
import type { KernelSet, LayerSet } from './layers/layer-set.js';
import { kernelSetFor, makeLayerSet } from './layers/layer-set.js';
import type { ParamLayout } from './layout.js';
import { paramLayout } from './layout.js';
import type { GenerateOptions } from './model-input.js';
import { checkBatch, checkGenerate, checkGrads, checkParams } from './model-input.js';
import type { ModelParams } from './model-params.js';
import { uploadParams } from './model-params.js';
import { Rng } from './prng.js';
import type { Profiler } from './profiler.js';
import { timed } from './profiler.js';
import { sampleToken } from './sampling.js';

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
  /** The layer implementations in use. */
  readonly layerSet: LayerSet;
  private readonly block: Block;
  private readonly entryOffset: Map<string, number>;
  private readonly profiler: Profiler | undefined;
  private current: ModelParams | null = null;
  private disposed = false;
  /** The TF.js backend the model was built for (its kernels and tensors live there). */
  private readonly tfBackend: string;

  constructor(config: GPTConfig, options: GPTOptions = {}) {
    validateConfig(config);
    this.config = { ...config };
    this.layout = paramLayout(config);
    this.entryOffset = new Map(this.layout.entries.map((e) => [e.name, e.offset]));
    this.profiler = options.profiler;
    this.tfBackend = tf.getBackend();
    const kind = options.kernels ?? kernelSetFor(this.tfBackend);
    const base = makeLayerSet(kind, config.heads, config.layerNormEps);
    const p = this.profiler;
    this.layerSet = {
      ...base,
      layerNorm: timed('ln', base.layerNorm, p),
      embedding: timed('embedding', base.embedding, p),
      head: timed('head', base.head, p),
    };
    this.block = new Block(base, p);
  }

  /** The parameter tensors (valid until the next setParams or dispose). */
  get params(): ModelParams {
    if (this.disposed) throw new TrainerError(ModelErrorCode.MODEL_STATE, 'the model was disposed', { hint: 'create a new GPT' });
    this.checkBackend();
    if (this.current === null) {
      throw new TrainerError(ModelErrorCode.MODEL_STATE, 'no parameters: call setParams first', {
        hint: 'model.setParams(initParams(config, seed)) or a loaded checkpoint',
      });
    }
    return this.current;
  }

  /** Uploads the flat vector into TF.js tensors (disposing the previous ones). The array is copied. */
  setParams(flat: Float32Array): void {
    if (this.disposed) throw new TrainerError(ModelErrorCode.MODEL_STATE, 'the model was disposed', { hint: 'create a new GPT' });
    checkParams(flat, this.layout.totalSize);
    this.checkBackend();
    const next = this.time('setParams', () => uploadParams(this.config, this.layout, flat, this.layerSet.usesTransposedWeights));
    if (this.current !== null) tf.dispose(this.current.tensors);
    this.current = next;
  }

  /** The current parameters as a fresh flat vector. */
  getParams(): Float32Array {
    const p = this.params;
    const flat = new Float32Array(this.layout.totalSize);
    this.layout.entries.forEach((e, i) => flat.set(hostDownload(p.entryTensors[i]), e.offset));
    return flat;
  }

  /**
   * One micro-batch: tokens/targets are [B*T] row-major (T <= contextLength), targets < 0 ignored.
   * Returns the mean cross-entropy over counted targets and the count; ADDS
   * gradScale * d(mean loss)/d(params) into grads (length layout.totalSize).
   */
  forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, grads: Float32Array, gradScale = 1): LossResult {
    const p = this.params;
    checkBatch(this.config, tokens, batch, targets);
    checkGrads(grads, this.layout.totalSize, gradScale);
    const L = this.layerSet;
    const pending: Saved[] = [];
    try {
      // forward: [B*T] -> [B, T, C] -> blocks -> ln_f -> loss
      const emb = L.embedding.forward(p.embedding, { tokens, batch });
      pending.push(emb.saved);
      let x = emb.y;
      const blockSaved = [];
      for (const bp of p.blocks) {
        const r = this.block.forward(bp, x);
        x.dispose();
        x = r.y;
        pending.push(r.saved);
        blockSaved.push(r.saved);
      }
      const lnf = L.layerNorm.forward(p.lnf, x);
      x.dispose();
      pending.push(lnf.saved);
      const head = L.head.forward(p.head, lnf.y, targets);
      lnf.y.dispose();
      pending.push(head.saved);
      // backward
      const hb = L.head.backward(p.head, head.saved, gradScale);
      this.accumulate(grads, '', hb.dParams, { wte: 'wte.weight' });
      const lb = L.layerNorm.backward(p.lnf, lnf.saved, hb.dx);
      hb.dx.dispose();
      this.accumulate(grads, 'ln_f.', lb.dParams);
      let dx = lb.dx;
      for (let i = p.blocks.length - 1; i >= 0; i--) {
        const r = this.block.backward(p.blocks[i], blockSaved[i], dx);
        dx.dispose();
        dx = r.dx;
        this.accumulate(grads, `h.${i}.`, r.dParams);
      }
      const eb = L.embedding.backward(p.embedding, emb.saved, dx);
      dx.dispose();
      this.accumulate(grads, '', eb.dParams, { wte: 'wte.weight', wpe: 'wpe.weight' });
      return { loss: head.loss, count: head.count };
    } finally {
      for (const s of pending) s.release(); // no-op for consumed states; frees everything if a step threw
    }
  }

  /** Loss only (evaluation); same conventions as forwardBackward. */
  loss(tokens: Int32Array, targets: Int32Array, batch: number): LossResult {
    const p = this.params;
    checkBatch(this.config, tokens, batch, targets);
    const y = this.forwardHidden(p, tokens, batch);
    try {
      const head = this.layerSet.head.forward(p.head, y, targets, false);
      return { loss: head.loss, count: head.count };
    } finally {
      y.dispose();
    }
  }

  /** Next-token logits for the LAST position of each sequence: [B, V] row-major. */
  lastLogits(tokens: Int32Array, batch: number): Float32Array {
    const p = this.params;
    const T = checkBatch(this.config, tokens, batch);
    const C = this.config.dModel;
    const y = this.forwardHidden(p, tokens, batch);
    const last = tf.tidy(() => tf.reshape(tf.slice(y, [0, T - 1, 0], [batch, 1, C]), [batch, C])); // [B, T, C] -> [B, C]
    y.dispose();
    const logits = this.layerSet.head.logits(p.head, last);
    last.dispose();
    const out = hostRead([logits], ([v]) => v.slice());
    logits.dispose();
    return out;
  }

  /**
   * Autoregressive sampling: appends up to maxNewTokens ids to the prompt (cropping the context to
   * the last contextLength ids each step) and returns prompt + generated ids.
   */
  generate(prompt: number[], opts: GenerateOptions): number[] {
    checkGenerate(this.config, prompt, opts);
    const rng = new Rng(opts.seed ?? 0);
    const out = prompt.slice();
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const ctx = Int32Array.from(out.slice(-this.config.contextLength));
      const next = sampleToken(this.lastLogits(ctx, 1), opts.temperature ?? 1, opts.topK, rng);
      out.push(next);
      if (opts.stopToken !== undefined && next === opts.stopToken) break;
    }
    return out;
  }

  dispose(): void {
    if (this.current !== null) tf.dispose(this.current.tensors);
    this.current = null;
    this.disposed = true;
  }

  private checkBackend(): void {
    if (tf.getBackend() !== this.tfBackend) {
      throw new TrainerError(ModelErrorCode.MODEL_STATE, `the model was built on the '${this.tfBackend}' backend but '${tf.getBackend()}' is active`, {
        hint: 'call initBackend before creating the GPT and do not switch backends while it is in use',
      });
    }
  }

  /** Embedding, blocks and ln_f without saving anything: [B*T] -> [B, T, C]. */
  private forwardHidden(p: ModelParams, tokens: Int32Array, batch: number): tf.Tensor {
    const L = this.layerSet;
    let x = L.embedding.forward(p.embedding, { tokens, batch }, false).y;
    for (const bp of p.blocks) {
      const r = this.block.forward(bp, x, false);
      x.dispose();
      x = r.y;
    }
    const y = L.layerNorm.forward(p.lnf, x, false).y;
    x.dispose();
    return y;
  }

  /** grads[entry] += dParams[key] for every key, entry name = prefix + key (or rename[key]). */
  private accumulate(grads: Float32Array, prefix: string, dParams: ParamGrads, rename: Record<string, string> = {}): void {
    this.time('accumulate', () => {
      for (const [key, values] of Object.entries(dParams)) {
        const name = rename[key] ?? prefix + key;
        const offset = this.entryOffset.get(name);
        if (offset === undefined) throw new Error(`internal: no parameter named ${name}`);
        addInto(grads, offset, values);
      }
    });
  }

  private time<R>(phase: string, fn: () => R): R {
    return this.profiler === undefined ? fn() : this.profiler.time(phase, fn);
  }
}

function addInto(dst: Float32Array, offset: number, src: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[offset + i] += src[i];
}
