/**
 * A LoRA model as the engine's segmented model: the trained flat vector is the adapters only
 * (lora-layout.ts: one unit per block of this rank's stage, tensor-parallel shards as their base
 * linears), and the frozen base is held beside it, resident, read once (`loadBase`).
 *
 *   segment      forward/backward reads                    gradients
 *   embedding    the frozen wte                            none (backward is skipped)
 *   block h.i    frozen h.i + adapter unit of h.i          lora_A, lora_B of h.i only
 *   head         the frozen ln_f and head                  none (only dX flows back)
 *
 * The segments are the base model's (GPTSegments: same layers, same tensor- and pipeline-parallel
 * split); this class builds each segment's parameters from the frozen base and the adapters (the
 * base linears flagged frozen: no weight gradient is computed, layers/lora-linear.ts), and routes
 * the adapter gradients into the engine's unit buffers. So the engine's ZeRO partitions, gradient
 * all-reduce, optimizer state and checkpoints hold adapter elements only.
 *
 * Tensor parallel: a replicated factor's gradient (A of a column-parallel linear, B of a
 * row-parallel one) is each rank's partial sum (lora-linear.ts); after a block's backward the
 * replicated factors' gradients are summed over the tensor-parallel group in one all-reduce.
 *
 * Dropout (--lora-dropout p > 0, lora-dropout.ts): a training forward attaches to each adapter
 * where its input sits (the run's seed, the micro-batch's origin: step and first global row, the
 * linear's name and, on a row-parallel shard, its first global input feature), so every layout
 * builds the same mask; the backward uses the mask its forward saved.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from '../config.js';
import { hostOp } from '../host/tensor-io.js';
import type { GradValue, Saved } from '../layers/layer.js';
import type { BlockParams } from '../layers/block.js';
import type { LlamaBlockParams } from '../layers/llama-block.js';
import type { LoraLinearParams } from '../layers/lora-linear.js';
import type { ParamUnit } from '../layout.js';
import type { UnitParams } from '../model-params.js';
import { GPTSegments, type GPTSegmentsOptions, type SegmentBatch, type SegmentForward, type SegmentSpec, type UnitGradBuffer } from '../segments.js';
import type { TensorParallelGroup } from '../tensor-parallel/mappings.js';
import { downloadForCollective } from '../tensor-parallel/mappings.js';
import { type LoraConfig, loraScale, loraTargetLinears } from './lora-config.js';
import type { LoraDropoutSpec } from './lora-dropout.js';
import { packedRowsOf } from '../layers/segment-mask.js';

/** Positions n mod T (a micro-batch with examples but no segments: one example per row). */
function positionsInRows(mb: SegmentBatch): Int32Array {
  const T = mb.tokens.length / mb.batch;
  return Int32Array.from({ length: mb.tokens.length }, (_, n) => n % T);
}
import { initLoraRange, loraLayout, type LoraLayout, type LoraParamEntry } from './lora-layout.js';

/** LlamaBlockParams' field of each block-local linear. */
const LLAMA_FIELDS: Record<string, keyof LlamaBlockParams> = {
  'attn.q_proj': 'q', 'attn.k_proj': 'k', 'attn.v_proj': 'v', 'attn.o_proj': 'o',
  'mlp.gate_proj': 'gate', 'mlp.up_proj': 'up', 'mlp.down_proj': 'down',
};

/** GPT-2's BlockParams (and a tensor-parallel block's local shards) field of each block-local linear. */
const GPT2_FIELDS: Record<string, keyof BlockParams> = {
  'attn.c_attn': 'cAttn', 'attn.c_proj': 'cProj', 'mlp.c_fc': 'cFc', 'mlp.c_proj': 'mlpProj',
};

/** A unit's tensors with each block linear's parameters replaced by f(block-local name, them); other units as they are. */
function withLinears(p: UnitParams, f: (linear: string, l: LoraLinearParams) => LoraLinearParams): UnitParams {
  const map = <B extends object>(block: B, fields: Record<string, keyof B>): B => {
    const out = { ...block };
    for (const [linear, key] of Object.entries(fields)) out[key] = f(linear, block[key] as LoraLinearParams) as B[keyof B];
    return out;
  };
  const q: UnitParams = { ...p };
  if (p.llamaBlock) q.llamaBlock = map(p.llamaBlock, LLAMA_FIELDS);
  if (p.block) q.block = map(p.block, GPT2_FIELDS);
  if (p.tpBlock) q.tpBlock = { ...p.tpBlock, local: map(p.tpBlock.local, GPT2_FIELDS) };
  return q;
}

export interface LoraSegmentsOptions extends GPTSegmentsOptions {
  /** The run's seed (LoRA dropout's mask is keyed by it); default 0. */
  seed?: number;
}

export class LoraSegments {
  readonly config: GPTConfig;
  readonly lora: LoraConfig;
  /** The frozen base model's segments (this rank's tensor-parallel shard and pipeline stage). */
  readonly base: GPTSegments;
  /** The adapted linears, block-local ('attn.q_proj'). */
  readonly linears: string[];
  /** The trained flat vector: the adapters. */
  readonly layout: { entries: LoraParamEntry[]; totalSize: number; blockRanges: { start: number; end: number }[] };
  readonly units: ParamUnit[];
  readonly segments: SegmentSpec[];
  readonly totalSize: number;
  readonly decayRanges: { start: number; end: number }[];
  readonly replicatedRanges: { start: number; end: number }[];
  /** The frozen embedding is nobody's gradient: no tied parameter to sum across stages. */
  readonly tiedEmbedding = null;
  private readonly adapters: LoraLayout;
  /** Base (stage) unit -> adapter unit. */
  private readonly adapterOf: Map<number, number>;
  private readonly tp: TensorParallelGroup | null;
  private readonly scale: number;
  private frozen: Map<number, UnitParams> | null = null;
  private readonly seed: number;
  /** Adapted linear 'h.i.attn.o_proj' -> the global index of its A shard's first row (row-parallel shards; else absent: 0). */
  private readonly firstFeature = new Map<string, number>();

  constructor(config: GPTConfig, lora: LoraConfig, options: LoraSegmentsOptions = {}) {
    this.config = { ...config };
    this.lora = { ...lora, targets: [...lora.targets] };
    this.linears = loraTargetLinears(config, lora);
    this.scale = loraScale(lora);
    this.base = new GPTSegments(config, options);
    this.tp = options.tensorParallel && options.tensorParallel.size > 1 ? options.tensorParallel : null;
    this.adapters = loraLayout(this.base.layout.entries, this.base.units, this.linears, lora.rank);
    this.layout = { entries: this.adapters.entries, totalSize: this.adapters.totalSize, blockRanges: this.adapters.units.map((u) => ({ start: u.start, end: u.end })) };
    this.units = this.adapters.units;
    this.totalSize = this.adapters.totalSize;
    this.adapterOf = new Map(this.adapters.baseUnitOf.map((b, j) => [b, j]));
    const mapUnits = (us: number[]): number[] => us.flatMap((b) => (this.adapterOf.has(b) ? [this.adapterOf.get(b)!] : []));
    this.segments = this.base.segments.map((s) => ({ ...s, forwardUnits: mapUnits(s.forwardUnits), backwardUnits: mapUnits(s.backwardUnits), gradUnits: mapUnits(s.gradUnits) }));
    this.decayRanges = this.adapters.entries.map((e) => ({ start: e.offset, end: e.offset + e.size }));
    this.replicatedRanges = this.adapters.entries.filter((e) => e.replicated).map((e) => ({ start: e.offset, end: e.offset + e.size }));
    this.seed = options.seed ?? 0;
    for (const e of this.adapters.entries) if (e.factor === 'A' && e.shard?.rows) this.firstFeature.set(e.name.slice(0, -'.lora_A.weight'.length), e.shard.rows[0]);
  }

  /** The frozen base's flat layout on this rank (what `loadBase` reads ranges of). */
  get baseLayout(): GPTSegments['layout'] {
    return this.base.layout;
  }

  get kernels(): GPTSegments['kernels'] {
    return this.base.kernels;
  }

  get activationIO(): GPTSegments['activationIO'] {
    return this.base.activationIO;
  }

  /**
   * Reads the frozen base, unit by unit, from ranges of the base layout (a pretrained model:
   * the same reader a full fine-tune initialises from). Kept resident until dispose().
   */
  async loadBase(read: (start: number, end: number) => Promise<Float32Array> | Float32Array): Promise<void> {
    this.disposeBase();
    const frozen = new Map<number, UnitParams>();
    try {
      for (let b = 0; b < this.base.units.length; b++) {
        const u = this.base.units[b];
        frozen.set(b, this.freeze(this.base.unitParams(b, await read(u.start, u.end))));
      }
    } catch (err) {
      for (const p of frozen.values()) p.dispose();
      throw err;
    }
    this.frozen = frozen;
  }

  /** Elements [start, end) of the adapters' initial values (A Kaiming-uniform, B zeros). */
  initRange(seed: number, start: number, end: number): Float32Array {
    return initLoraRange(this.adapters.entries, seed, start, end);
  }

  /** Ranges this rank leaves out of a global gradient norm: replicated factors on tensor-parallel ranks > 0. */
  normExcludedRanges(tensorParallelRank: number): { start: number; end: number }[] {
    return tensorParallelRank > 0 ? this.replicatedRanges : [];
  }

  /** Bytes of each adapter unit's compute tensors (4 per element). */
  unitCosts(): (ParamUnit & { computeBytes: number })[] {
    return this.units.map((u) => ({ ...u, computeBytes: 4 * (u.end - u.start) }));
  }

  /** An adapter unit's tensors from its flat values (host array, or a 1-D backend tensor: split on the device, not disposed). */
  unitParams(unit: number, values: Float32Array | { readonly shape: readonly number[] }): UnitParams {
    const u = this.units[unit];
    const entries = this.adapters.entries.filter((e) => e.offset >= u.start && e.offset < u.end);
    const tensors = values instanceof Float32Array
      ? hostOp([], entries.map((e) => e.shape), (_, outs) => entries.forEach((e, i) => outs[i].set(values.subarray(e.offset - u.start, e.offset - u.start + e.size))))
      : tf.tidy(() => {
        const flat = values as tf.Tensor;
        const parts = entries.length === 1 ? [flat] : tf.split(tf.reshape(flat, [flat.size]), entries.map((e) => e.size));
        return parts.map((p, i) => tf.reshape(p, entries[i].shape));
      });
    const adapters = new Map<string, { a: tf.Tensor; b: tf.Tensor }>();
    entries.forEach((e, i) => {
      const ab = adapters.get(e.linear) ?? { a: tensors[i], b: tensors[i] };
      if (e.factor === 'A') ab.a = tensors[i];
      else ab.b = tensors[i];
      adapters.set(e.linear, ab);
    });
    return { adapters, tensors, entryTensors: tensors, dispose: () => tensors.forEach((t) => t.dispose()) };
  }

  async forward(seg: number, params: ReadonlyMap<number, UnitParams>, x: tf.Tensor | null, mb: SegmentBatch, train: boolean): Promise<SegmentForward> {
    return this.base.forward(seg, this.segmentParams(seg, params, this.dropoutOf(mb, train)), x, mb, train);
  }

  /**
   * What the adapters need for dropout (the linear's name and first feature are added per
   * adapter), or null: p = 0, or an evaluation pass. A training micro-batch carries its origin
   * (step, first global row); the engine's runner strips it for evaluation. `train` alone cannot
   * tell: activation checkpointing's first forward is a training pass that saves nothing (train
   * false) and must drop what its recomputation drops.
   */
  private dropoutOf(mb: SegmentBatch, train: boolean): Omit<LoraDropoutSpec, 'name' | 'firstFeature'> | null {
    if (!(this.lora.dropout > 0)) return null;
    if (!mb.origin) {
      if (train) throw new Error('internal: LoRA dropout needs the training micro-batch\'s origin (its step and first global row)');
      return null;
    }
    const packed = mb.examples ? { examples: mb.examples, positions: packedRowsOf(mb)?.positions ?? positionsInRows(mb) } : {};
    return { p: this.lora.dropout, seed: this.seed, step: mb.origin.step, firstRow: mb.origin.row, seqLen: mb.tokens.length / mb.batch, ...packed };
  }

  /**
   * Backward of one segment: the base's backward over the frozen weights and the adapters; the
   * adapter gradients (tensor-parallel partial sums all-reduced) go into the adapter units' buffers.
   */
  async backward(seg: number, params: ReadonlyMap<number, UnitParams>, saved: Saved, dy: tf.Tensor | null, gradScale: number, grads: ReadonlyMap<number, UnitGradBuffer>): Promise<tf.Tensor | null> {
    const spec = this.base.segments[seg];
    if (spec.name === 'embedding') {
      saved.release(); // the frozen embedding needs no gradient, and nothing is before it
      return null;
    }
    const captures = new Map(spec.gradUnits.map((b) => [b, new AdapterGradCapture()]));
    let dx: tf.Tensor | null;
    try {
      dx = await this.base.backward(seg, this.segmentParams(seg, params), saved, dy, gradScale, captures);
    } catch (err) {
      for (const c of captures.values()) c.drop();
      throw err;
    }
    try {
      for (const [b, capture] of captures) {
        const j = this.adapterOf.get(b);
        if (j !== undefined) await this.deliver(j, capture, grads);
        capture.drop();
      }
    } catch (err) {
      dx?.dispose();
      for (const c of captures.values()) c.drop();
      throw err;
    }
    return dx;
  }

  /** Base (stage) unit b's frozen values, flat in the base layout's order (a device read). */
  async frozenUnitValues(b: number): Promise<Float32Array> {
    if (this.frozen === null) throw new Error('internal: LoraSegments used before loadBase');
    const u = this.base.units[b];
    const out = new Float32Array(u.end - u.start);
    let at = 0;
    for (const t of this.frozen.get(b)!.entryTensors) {
      out.set((await t.data()) as Float32Array, at);
      at += t.size;
    }
    return out;
  }

  /** The adapter unit of base (stage) unit b, if it has one. */
  adapterUnitOf(b: number): number | undefined {
    return this.adapterOf.get(b);
  }

  /**
   * Merges adapter unit j's values into its base unit's values in place: W += (alpha / r) A B for
   * every adapted linear (this rank's shards: a column-parallel W_t takes A B_t, a row-parallel
   * one A_t B, exactly its own rows and columns of the full merge). Sums in float64, rounded once.
   */
  mergeInto(j: number, baseValues: Float32Array, adapterValues: Float32Array): void {
    const u = this.units[j];
    const b = this.adapters.baseUnitOf[j];
    const baseStart = this.base.units[b].start;
    const entries = this.adapters.entries.filter((e) => e.offset >= u.start && e.offset < u.end);
    for (const linear of this.linears) {
      const a = entries.find((e) => e.linear === linear && e.factor === 'A')!;
      const bf = entries.find((e) => e.linear === linear && e.factor === 'B')!;
      const w = this.base.layout.entries.find((e) => e.name === `${u.name}.${linear}.weight`)!;
      const [inDim, outDim] = w.shape;
      const r = a.shape[1];
      const A = adapterValues.subarray(a.offset - u.start, a.offset - u.start + a.size);
      const B = adapterValues.subarray(bf.offset - u.start, bf.offset - u.start + bf.size);
      const W = baseValues.subarray(w.offset - baseStart, w.offset - baseStart + w.size);
      for (let i = 0; i < inDim; i++) {
        for (let o = 0; o < outDim; o++) {
          let sum = 0;
          for (let k = 0; k < r; k++) sum += A[i * r + k] * B[k * outDim + o];
          W[i * outDim + o] = W[i * outDim + o] + this.scale * sum;
        }
      }
    }
  }

  /** Frees the frozen base (and the base segments' own tables). */
  dispose(): void {
    this.disposeBase();
    this.base.dispose();
  }

  private disposeBase(): void {
    for (const p of this.frozen?.values() ?? []) p.dispose();
    this.frozen = null;
  }

  /** A base unit's tensors with every block linear and the output head (tied or not) flagged frozen. */
  private freeze(p: UnitParams): UnitParams {
    const q = withLinears(p, (_linear, l) => ({ ...l, frozen: true }));
    if (q.head) q.head = { ...q.head, frozen: true };
    if (q.embedding) q.embedding = { ...q.embedding, head: { ...q.embedding.head, frozen: true } };
    return q;
  }

  /** The base segment's units: frozen tensors, blocks with their adapters attached. */
  private segmentParams(seg: number, params: ReadonlyMap<number, UnitParams>, dropout: Omit<LoraDropoutSpec, 'name' | 'firstFeature'> | null = null): Map<number, UnitParams> {
    if (this.frozen === null) throw new Error('internal: LoraSegments used before loadBase');
    const spec = this.base.segments[seg];
    const out = new Map<number, UnitParams>();
    for (const b of new Set([...spec.forwardUnits, ...spec.backwardUnits])) {
      const p = this.frozen.get(b)!;
      const j = this.adapterOf.get(b);
      if (j === undefined) {
        out.set(b, p);
        continue;
      }
      const adapters = params.get(j)?.adapters;
      if (!adapters) throw new Error(`internal: adapter unit ${j} parameters were not provided`);
      const unit = this.units[j].name;
      out.set(b, withLinears(p, (linear, l) => {
        const ab = adapters.get(linear);
        if (!ab) return l;
        const name = `${unit}.${linear}`;
        const drop = dropout ? { dropout: { ...dropout, name, firstFeature: this.firstFeature.get(name) ?? 0 } } : {};
        return { ...l, lora: { a: ab.a, b: ab.b, scale: this.scale, ...drop } };
      }));
    }
    return out;
  }

  /** Adds a block's adapter gradients into adapter unit j's buffer, the replicated factors' summed over the tensor-parallel group first. */
  private async deliver(j: number, capture: AdapterGradCapture, grads: ReadonlyMap<number, UnitGradBuffer>): Promise<void> {
    const u = this.units[j];
    const buf = grads.get(j);
    if (!buf) throw new Error(`internal: no gradient buffer for adapter unit ${j}`);
    const entries = this.adapters.entries.filter((e) => e.offset >= u.start && e.offset < u.end);
    const local = (e: LoraParamEntry): string => e.name.slice(u.name.length + 1);
    if (this.tp) {
      const replicated = entries.filter((e) => e.replicated);
      const sum = new Float32Array(replicated.reduce((s, e) => s + e.size, 0));
      let at = 0;
      for (const e of replicated) {
        const g = capture.take(local(e));
        sum.set(g instanceof Float32Array ? g : await downloadForCollective(g), at);
        if (!(g instanceof Float32Array)) g.dispose();
        at += e.size;
      }
      if (sum.length) await this.tp.allReduce(sum, { op: 'sum' });
      at = 0;
      for (const e of replicated) {
        const values = sum.slice(at, at + e.size);
        capture.put(local(e), this.base.kernels === 'host' ? values : tf.tensor(values, e.shape, 'float32'));
        at += e.size;
      }
    }
    for (const e of entries) buf.add(e.offset - u.start, capture.take(local(e)));
  }
}

/**
 * A base unit's gradient buffer during a LoRA backward: the frozen parameters' gradients (the
 * norms', the head's) are dropped as they arrive; the adapters' are kept by name for `deliver`.
 */
class AdapterGradCapture implements UnitGradBuffer {
  private readonly named = new Map<string, GradValue>();

  add(_offset: number, g: GradValue): void {
    if (!(g instanceof Float32Array)) g.dispose();
  }

  addNamed(name: string, g: GradValue): void {
    if (this.named.has(name)) throw new Error(`internal: two gradients for ${name}`);
    this.named.set(name, g);
  }

  take(name: string): GradValue {
    const g = this.named.get(name);
    if (g === undefined) throw new Error(`internal: no gradient for ${name}`);
    this.named.delete(name);
    return g;
  }

  put(name: string, g: GradValue): void {
    this.named.set(name, g);
  }

  /** Frees whatever was not taken. */
  drop(): void {
    for (const g of this.named.values()) if (!(g instanceof Float32Array)) g.dispose();
    this.named.clear();
  }
}
