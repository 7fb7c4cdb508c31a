/**
 * The GPT as a chain of segments over parameter units, for engines that run communication
 * between layers: ZeRO-3 gathers a unit's parameters just before a segment runs and frees them
 * after; activation checkpointing re-runs a segment's forward in backward; a pipeline stage runs
 * a sub-chain. Same layers and math as GPT.forwardBackward, driven one segment at a time.
 *
 *   segment 0        embedding     reads unit 0 (wte, wpe)     backward reads nothing
 *   segment 1..L     block h.i     reads unit i+1
 *   segment L+1      ln_f + head   reads units L+1 (ln_f; an untied lm_head) and 0 (wte, a tied head)
 *
 * Both families (config.family): GPT-2 blocks (Block / TensorParallelBlock) or Llama blocks
 * (LlamaBlock: RMSNorm, RoPE, grouped-query attention, SwiGLU; its own tensor-parallel split),
 * the final norm a LayerNorm or an RMSNorm, the head tied to wte or its own lm_head.
 *
 * Gradients are ADDED into caller-owned unit buffers (UnitGradBuffer: each parameter's gradient
 * at its unit-relative flat offset), so a unit's gradient can be reduced as soon as the last
 * segment contributing to it is done. With the tf kernel set everything stays on the backend:
 * gradients are handed over as tensors, the loss is a pending device read, and activations cross
 * to another pipeline stage through an awaited download.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from './config.js';
import { familyOf, isTiedHead, kvHeadsOf, validateConfig } from './config.js';
import { LlamaBlock, type LlamaBlockSaved } from './layers/llama-block.js';
import { LoraLinear } from './layers/lora-linear.js';
import { RMSNorm, type RMSNormParams } from './layers/rmsnorm.js';
import { RotaryEmbedding } from './layers/rope.js';
import { packedRowsOf } from './layers/segment-mask.js';
import { checkBatch } from './model-input.js';
import { Block } from './layers/block.js';
import type { EmbeddingParams } from './layers/embedding.js';
import type { GradValue, Saved, ParamGrads } from './layers/layer.js';
import type { KernelSet, LayerSet } from './layers/layer-set.js';
import { kernelSetFor, makeLayerSet } from './layers/layer-set.js';
import type { ParamEntry, ParamLayout, ParamUnit } from './layout.js';
import { paramLayout, paramUnits } from './layout.js';
import type { UnitParams } from './model-params.js';
import type { Profiler } from './profiler.js';
import { timed } from './profiler.js';
import { unitArchitecture, uploadUnit } from './model-params.js';
import type { TensorParallelGroup } from './tensor-parallel/mappings.js';
import { TensorParallelBlock } from './tensor-parallel/parallel-block.js';
import { localFromGlobal, placeShard, tensorParallelLayout, type TensorShard, type TPLayout } from './tensor-parallel/tp-layout.js';
import { stagePlan, type PipelineStageSpec, type SegmentKind } from './pipeline-stage.js';
import type { VocabParallelEmbeddingLayer, VocabParallelHeadLayer } from './tensor-parallel/vocab-parallel.js';

export type { SegmentBatch, SegmentForward, SegmentSpec, UnitGradBuffer } from './segment-contract.js';
import type { SegmentBatch, SegmentForward, SegmentSpec, UnitGradBuffer } from './segment-contract.js';

/** The last segment's saved state: ln_f's and the head's. */
class HeadSegmentSaved implements Saved {
  constructor(readonly lnf: Saved, readonly head: Saved) {}
  release(): void {
    this.lnf.release();
    this.head.release();
  }
}

export interface GPTSegmentsOptions {
  kernels?: KernelSet;
  /** Collects ms per layer call (benchmarks). */
  profiler?: Profiler;
  /** Split the model over this tensor-parallel group (Megatron-LM); absent or of size 1: no split. */
  tensorParallel?: TensorParallelGroup;
  /** Hold only this pipeline stage's part of the model (pipeline-stage.ts); absent: all of it. */
  pipeline?: PipelineStageSpec;
}

/** The tensor-parallel pieces of a model split over a group of more than one rank. */
interface TensorParallelParts {
  group: TensorParallelGroup;
  block: TensorParallelBlock;
  embedding: VocabParallelEmbeddingLayer;
  head: VocabParallelHeadLayer;
}

export class GPTSegments {
  readonly config: GPTConfig;
  /** This rank's flat layout: its pipeline stage's units of the full (or tensor-parallel shard's) layout. */
  readonly layout: ParamLayout;
  readonly units: ParamUnit[];
  readonly segments: SegmentSpec[];
  readonly totalSize: number;
  /** Weight-decay ranges of the flat vector: matrices and embeddings (rank >= 2). */
  readonly decayRanges: { start: number; end: number }[];
  /** Ranges of parameters identical on every tensor-parallel rank (counted once in norms). */
  readonly replicatedRanges: { start: number; end: number }[];
  /**
   * The tied embedding across pipeline stages: the range of wte in this stage's flat vector on
   * the first stage (owner) and on the last stage (its copy), whose gradients must be summed
   * before each step; `copyUnit` is the whole copy (not counted in norms or gathered models).
   */
  readonly tiedEmbedding: { unit: number; wte: { start: number; end: number }; copyUnit: { start: number; end: number } | null } | null;
  private readonly kinds: SegmentKind[];
  private readonly layers: LayerSet;
  private readonly block: Block;
  /** The Llama block (family 'llama'), tensor-parallel when the model is split. */
  private readonly llamaBlock: LlamaBlock | null;
  /** Llama's final RMSNorm. */
  private readonly rmsNorm: RMSNorm | null;
  private readonly rope: RotaryEmbedding | null;
  /** Whether the output head reads wte (else lm_head in the final unit). */
  private readonly tiedHead: boolean;
  private readonly tp: TensorParallelParts | null;
  /** Base (tensor-parallel or full) layout and, per local unit, its base unit's start. */
  private readonly baseLayout: ParamLayout;
  private readonly baseStarts: number[];
  /** Per unit: local parameter name -> offset inside the unit. */
  private readonly localOffsets: Map<string, number>[];

  constructor(config: GPTConfig, options: GPTSegmentsOptions = {}) {
    validateConfig(config);
    this.config = { ...config };
    const group = options.tensorParallel && options.tensorParallel.size > 1 ? options.tensorParallel : undefined;
    const T = group?.size ?? 1;
    const tpLayout = group ? tensorParallelLayout(config, T, group.rank) : null;
    this.baseLayout = tpLayout ?? paramLayout(config);
    const baseUnits = paramUnits(this.baseLayout);
    const plan = stagePlan(config, options.pipeline ?? { stages: 1, stage: 0 });
    this.kinds = plan.kinds;
    // This stage's units, laid out one after another.
    const entries: (ParamEntry & { replicated?: boolean })[] = [];
    this.units = [];
    this.baseStarts = [];
    for (const b of plan.baseUnits) {
      const u = baseUnits[b];
      const start = entries.length ? entries[entries.length - 1].offset + entries[entries.length - 1].size : 0;
      for (const e of this.baseLayout.entries) if (e.offset >= u.start && e.offset < u.end) entries.push({ ...e, offset: e.offset - u.start + start });
      this.units.push({ name: u.name, start, end: start + u.end - u.start });
      this.baseStarts.push(u.start);
    }
    this.totalSize = this.units.length ? this.units[this.units.length - 1].end : 0;
    this.layout = { entries, totalSize: this.totalSize, blockRanges: [] };
    this.decayRanges = entries.filter((e) => e.shape.length >= 2).map((e) => ({ start: e.offset, end: e.offset + e.size }));
    this.replicatedRanges = entries.filter((e) => e.replicated).map((e) => ({ start: e.offset, end: e.offset + e.size }));
    const embeddingUnit = plan.copyUnit ?? (plan.baseUnits[0] === 0 && plan.baseUnits.length > 0 ? 0 : -1);
    const pipelined = (options.pipeline?.stages ?? 1) > 1;
    if (pipelined && embeddingUnit >= 0 && isTiedHead(config)) {
      const u = this.units[embeddingUnit];
      const wteSize = entries.find((e) => e.name === 'wte.weight' && e.offset >= u.start)!.size;
      this.tiedEmbedding = { unit: embeddingUnit, wte: { start: u.start, end: u.start + wteSize }, copyUnit: plan.copyUnit === null ? null : { start: u.start, end: u.end } };
    } else {
      this.tiedEmbedding = null;
    }
    const layers = makeLayerSet(options.kernels ?? kernelSetFor(tf.getBackend()), config.heads / T, config.layerNormEps);
    const p = options.profiler;
    // GPT-2 blocks run their linears through LoraLinear: the kernel set's Linear unless the parameters carry LoRA's frozen flag or an adapter (lora/lora-segments.ts).
    const linear = new LoraLinear(layers.linear, layers.kind === 'host');
    this.layers = { ...layers, linear, layerNorm: timed('ln', layers.layerNorm, p), embedding: timed('embedding', layers.embedding, p), head: timed('head', layers.head, p) };
    this.block = new Block({ ...layers, linear }, p);
    this.tiedHead = isTiedHead(config);
    if (familyOf(config) === 'llama') {
      this.rope = new RotaryEmbedding(config);
      this.rmsNorm = new RMSNorm(config.layerNormEps, layers.kind);
      this.llamaBlock = new LlamaBlock(layers, config.layerNormEps, this.rope, { heads: config.heads / T, kvHeads: kvHeadsOf(config) / T }, group ?? null, p);
    } else {
      this.rope = null;
      this.rmsNorm = null;
      this.llamaBlock = null;
    }
    if (group && tpLayout) {
      const vocabStart = tpLayout.entries[0].shard.rows![0];
      this.tp = {
        group,
        block: new TensorParallelBlock(this.layers, group),
        embedding: this.layers.vocabParallelEmbedding(group, vocabStart),
        head: this.layers.vocabParallelHead(group, vocabStart),
      };
    } else {
      this.tp = null;
    }
    const unitIndex = new Map(plan.baseUnits.map((b, i) => [b, i]));
    const last = this.units.length - 1;
    this.segments = plan.kinds.map((k) => {
      if (k.kind === 'embedding') return { name: 'embedding', forwardUnits: [0], backwardUnits: [], gradUnits: [0] };
      if (k.kind === 'block') {
        const u = unitIndex.get(k.block + 1)!;
        return { name: `h.${k.block}`, forwardUnits: [u], backwardUnits: [u], gradUnits: [u], recomputable: true };
      }
      const final = plan.copyUnit === null ? last : last - 1;
      const units = this.tiedHead ? [final, embeddingUnit] : [final];
      return { name: 'head', forwardUnits: units, backwardUnits: units, gradUnits: units };
    });
    this.localOffsets = this.units.map((u) => {
      const m = new Map<string, number>();
      for (const e of entries) {
        if (e.offset < u.start || e.offset >= u.end) continue;
        const local = u.name.startsWith('h.') ? e.name.slice(u.name.length + 1) : e.name;
        m.set(local, e.offset - u.start);
      }
      return m;
    });
  }

  /**
   * How activations cross between pipeline stages: [B, T, C] float32, as plain arrays (an
   * awaited download on the sending stage, an upload on the receiving one).
   */
  readonly activationIO = {
    size: (mb: { tokens: Int32Array }): number => mb.tokens.length * this.config.dModel,
    toHost: async (t: tf.Tensor): Promise<Float32Array> => {
      const values = (await t.data()) as Float32Array;
      return tf.getBackend() === 'cpu' ? values.slice() : values; // the cpu backend hands out its own storage
    },
    fromHost: (values: Float32Array, mb: { tokens: Int32Array; batch: number }): tf.Tensor =>
      tf.tensor(values, [mb.batch, mb.tokens.length / mb.batch, this.config.dModel]),
  };

  /**
   * Bytes of each unit's compute tensors (what unitParams builds): 4 per element, plus a
   * transposed copy of every matrix (block weights and wte) with the host kernel set, which
   * multiplies by W^T (model-params.ts), plus the two zero biases a tensor-parallel block's
   * row-parallel layers run with.
   */
  unitCosts(): (ParamUnit & { computeBytes: number })[] {
    const transposes = this.layers.usesTransposedWeights;
    return this.units.map((u) => {
      let elements = 0;
      for (const e of this.layout.entries) {
        if (e.offset < u.start || e.offset >= u.end) continue;
        const transposed = transposes && e.shape.length === 2 && ((e.name === 'wte.weight' && this.tiedHead) || e.name === 'lm_head.weight' || e.name.startsWith('h.'));
        elements += e.size * (transposed ? 2 : 1);
        if (this.llamaBlock && e.shape.length === 2 && e.name.startsWith('h.')) elements += e.shape[1]; // a zero bias per linear
      }
      if (this.tp && !this.llamaBlock && u.name.startsWith('h.')) elements += 2 * this.config.dModel;
      return { ...u, computeBytes: 4 * elements };
    });
  }

  /** Frees what the segments own beyond the units' tensors (the rotary tables of a Llama). */
  dispose(): void {
    this.rope?.dispose();
  }

  /** The kernel set the layers run. */
  get kernels(): KernelSet {
    return this.layers.kind;
  }

  /**
   * Next-token logits of the last position of each sequence, [B, V], from the last block's output
   * x [B, T, C]: the head segment without the loss (a whole model, not tensor-parallel).
   */
  lastLogits(params: ReadonlyMap<number, UnitParams>, x: tf.Tensor): tf.Tensor {
    if (this.tp) throw new Error('internal: lastLogits of a tensor-parallel shard');
    const [finalUnit] = this.segments[this.segments.length - 1].forwardUnits;
    const [B, T, C] = x.shape;
    const last = tf.tidy(() => tf.reshape(tf.slice(x, [0, T - 1, 0], [B, 1, C]), [B, C])); // [B, T, C] -> [B, C]
    const lnf = this.finalNorm(params, finalUnit, last, false);
    last.dispose();
    const logits = this.layers.head.logits(this.headParams(params), lnf.y);
    lnf.y.dispose();
    return logits;
  }

  /** Ranges this rank must leave out of a global gradient norm: other ranks' copies. */
  normExcludedRanges(tensorParallelRank: number): { start: number; end: number }[] {
    return [...(tensorParallelRank > 0 ? this.replicatedRanges : []), ...(this.tiedEmbedding?.copyUnit ? [this.tiedEmbedding.copyUnit] : [])];
  }

  /** This rank's flat vector from the full model's (its tensor-parallel shard of its stage's units). */
  shardOf(full: Float32Array): Float32Array {
    const base = this.tp ? localFromGlobal(this.baseLayout as TPLayout, paramLayout(this.config), full) : full;
    const out = new Float32Array(this.totalSize);
    this.units.forEach((u, i) => out.set(base.subarray(this.baseStarts[i], this.baseStarts[i] + u.end - u.start), u.start));
    return out;
  }

  /**
   * Writes this rank's values into a full-size vector. Parameters another rank also holds are
   * left out (with `withReplicated` false: the tensor-parallel replicated ones; always: the
   * pipeline's copy of the tied embedding), so summing the vectors of all ranks of one data-
   * parallel replica assembles the full model once.
   */
  placeInto(local: Float32Array, full: Float32Array, withReplicated: boolean): void {
    this.units.forEach((u, i) => this.placeUnitInto(i, local.subarray(u.start, u.end), full, 0, withReplicated));
  }

  /** The full model's unit that local unit u is (a part of): the same name. */
  globalUnit(u: number): ParamUnit {
    const name = this.units[u].name;
    return paramUnits(paramLayout(this.config)).find((g) => g.name === name)!;
  }

  /**
   * placeInto for one unit: local unit u's values (unit-relative) into a window of the full
   * model's flat vector, `full` holding its elements [fullStart, fullStart + full.length).
   */
  placeUnitInto(u: number, values: Float32Array, full: Float32Array, fullStart: number, withReplicated: boolean): void {
    const fullIndex = new Map(paramLayout(this.config).entries.map((e) => [e.name, e]));
    const copy = this.tiedEmbedding?.copyUnit;
    const unit = this.units[u];
    for (const e of this.layout.entries as (ParamEntry & { replicated?: boolean; shard?: TensorShard })[]) {
      if (e.offset < unit.start || e.offset >= unit.end) continue;
      if (copy && e.offset >= copy.start && e.offset < copy.end) continue;
      if (e.replicated && !withReplicated) continue;
      const g = fullIndex.get(e.name)!;
      const src = values.subarray(e.offset - unit.start, e.offset - unit.start + e.size);
      const dst = full.subarray(g.offset - fullStart, g.offset - fullStart + g.size);
      if (e.shard) placeShard(src, e.shard, dst);
      else dst.set(src);
    }
  }

  /**
   * A unit's compute tensors from its slice of the flat vector (flat.subarray(u.start, u.end)) on
   * the host, or from a 1-D backend tensor of it (split on the device; not disposed).
   */
  unitParams(unit: number, values: Float32Array | { readonly shape: readonly number[] }): UnitParams {
    const p = uploadUnit(this.layout, this.units[unit], values as Float32Array | tf.Tensor, this.layers.usesTransposedWeights, unitArchitecture(this.config));
    if (this.tp && p.block && !this.llamaBlock) {
      // Row-parallel layers run with zero biases; the real biases are added after the all-reduce.
      const zeros = [tf.fill([this.config.dModel], 0), tf.fill([this.config.dModel], 0)]; // a kernel each, nothing uploaded
      p.tensors.push(...zeros);
      p.tpBlock = {
        local: { ...p.block, cProj: { ...p.block.cProj, bias: zeros[0] }, mlpProj: { ...p.block.mlpProj, bias: zeros[1] } },
        projBias: p.block.cProj.bias,
        mlpBias: p.block.mlpProj.bias,
      };
    }
    return p;
  }

  async forward(seg: number, params: ReadonlyMap<number, UnitParams>, x: tf.Tensor | null, mb: SegmentBatch, train: boolean): Promise<SegmentForward> {
    const kind = this.kinds[seg];
    const spec = this.segments[seg];
    const tp = this.tp;
    if (kind.kind === 'embedding') {
      checkBatch(this.config, mb.tokens, mb.batch, mb.targets, mb.segments);
      const emb = unitOf(params, spec.forwardUnits[0]).embedding!;
      const positions = packedRowsOf(mb)?.positions;
      const r = tp
        ? await tp.embedding.forward(emb, mb.tokens, mb.batch, train, positions)
        : this.layers.embedding.forward(emb, { tokens: mb.tokens, batch: mb.batch, ...(positions ? { positions } : {}) }, train); // [B*T] -> [B, T, C]
      return { y: r.y, saved: r.saved };
    }
    if (kind.kind === 'block') {
      const unit = unitOf(params, spec.forwardUnits[0]);
      const packed = packedRowsOf(mb); // the same object for every block of this micro-batch
      if (this.llamaBlock) return this.llamaBlock.forward(unit.llamaBlock!, input(x, seg), train, packed);
      const r = tp ? await tp.block.forward(unit.tpBlock!, input(x, seg), train, packed) : this.block.forward(unit.block!, input(x, seg), train, packed);
      return { y: r.y, saved: r.saved };
    }
    const [finalUnit] = spec.forwardUnits;
    const lnf = this.finalNorm(params, finalUnit, input(x, seg), train);
    try {
      const headParams = this.headParams(params);
      const head = tp ? await tp.head.forward(headParams, lnf.y, mb.targets, train) : this.layers.head.forward(headParams, lnf.y, mb.targets, train);
      return { y: null, saved: new HeadSegmentSaved(lnf.saved, head.saved), loss: { loss: head.loss, count: head.count } };
    } finally {
      lnf.y.dispose();
    }
  }

  /**
   * Backward of one segment: adds gradScale-weighted parameter gradients into `grads` (unit index
   * -> the unit's buffer) and returns the input gradient (null for the embedding).
   * Consumes `saved`. For the head segment `dy` is null and gradScale scales d(mean loss).
   */
  async backward(seg: number, params: ReadonlyMap<number, UnitParams>, saved: Saved, dy: tf.Tensor | null, gradScale: number, grads: ReadonlyMap<number, UnitGradBuffer>): Promise<tf.Tensor | null> {
    const kind = this.kinds[seg];
    const spec = this.segments[seg];
    const tp = this.tp;
    if (kind.kind === 'embedding') {
      const u = spec.gradUnits[0];
      const buf = gradOf(grads, u);
      const wte = this.localOffsets[u].get('wte.weight')!;
      const wpe = this.localOffsets[u].get('wpe.weight'); // absent for Llama (RoPE)
      const unitSize = this.units[u].end - this.units[u].start;
      const layer = tp ? tp.embedding : this.layers.embedding;
      // A host buffer takes the host kernels' scatter-add in place (no gradient arrays).
      const into = (layer as { backwardInto?: (s: Saved, dy: tf.Tensor, dwte: Float32Array, dwpe: Float32Array | null) => void }).backwardInto;
      if (buf.host && into) {
        into.call(layer, saved, input(dy, seg), buf.host.subarray(wte, wpe ?? unitSize), wpe === undefined ? null : buf.host.subarray(wpe, unitSize));
        return null;
      }
      // The embedding's backward needs no parameter values (an engine that shards them need not gather them), only shapes.
      const { dParams } = layer.backward(this.embeddingShapes(u), saved, input(dy, seg));
      buf.add(wte, dParams.wte);
      if (wpe !== undefined && dParams.wpe !== undefined) buf.add(wpe, dParams.wpe);
      return null;
    }
    if (kind.kind === 'block') {
      const u = spec.gradUnits[0];
      const unit = unitOf(params, u);
      type BlockSaved_ = Parameters<Block['backward']>[1];
      if (this.llamaBlock) {
        const r = await this.llamaBlock.backward(unit.llamaBlock!, saved as LlamaBlockSaved, input(dy, seg));
        this.addInto(grads, u, r.dParams);
        return r.dx;
      }
      const r = tp ? await tp.block.backward(unit.tpBlock!, saved as BlockSaved_, input(dy, seg)) : this.block.backward(unit.block!, saved as BlockSaved_, input(dy, seg));
      this.addInto(grads, u, r.dParams);
      return r.dx;
    }
    const [finalUnit, embeddingUnit] = spec.backwardUnits;
    const { lnf: lnfSaved, head: headSaved } = saved as HeadSegmentSaved;
    const headParams = this.headParams(params);
    const hb = tp
      ? await tp.head.backward(headParams, headSaved, gradScale)
      : this.layers.head.backward(headParams, headSaved as Parameters<LayerSet['head']['backward']>[1], gradScale);
    if (hb.dParams.wte === undefined) {
      // a frozen head (LoRA): no weight gradient
    } else if (this.tiedHead) this.addInto(grads, embeddingUnit, { 'wte.weight': hb.dParams.wte });
    else this.addInto(grads, finalUnit, { 'lm_head.weight': hb.dParams.wte });
    if (this.rmsNorm) {
      const lb = this.rmsNorm.backward(unitOf(params, finalUnit).lnfRms!, lnfSaved as Parameters<RMSNorm['backward']>[1], hb.dx);
      hb.dx.dispose();
      this.addInto(grads, finalUnit, { 'ln_f.weight': lb.dParams.weight });
      return lb.dx;
    }
    const lb = this.layers.layerNorm.backward(unitOf(params, finalUnit).lnf!, lnfSaved as Parameters<LayerSet['layerNorm']['backward']>[1], hb.dx);
    hb.dx.dispose();
    this.addInto(grads, finalUnit, { 'ln_f.weight': lb.dParams.weight, 'ln_f.bias': lb.dParams.bias });
    return lb.dx;
  }

  /** The final norm (LayerNorm, or Llama's RMSNorm) of the head segment. */
  private finalNorm(params: ReadonlyMap<number, UnitParams>, finalUnit: number, x: tf.Tensor, train: boolean): { y: tf.Tensor; saved: Saved } {
    if (this.rmsNorm) return this.rmsNorm.forward(unitOf(params, finalUnit).lnfRms as RMSNormParams, x, train);
    return this.layers.layerNorm.forward(unitOf(params, finalUnit).lnf!, x, train);
  }

  /** The output head's weight: wte of the embedding unit (tied) or lm_head of the final unit. */
  private headParams(params: ReadonlyMap<number, UnitParams>): UnitParams['head'] & object {
    const spec = this.segments[this.segments.length - 1];
    if (this.tiedHead) return unitOf(params, spec.forwardUnits[1]).embedding!.head;
    return unitOf(params, spec.forwardUnits[0]).head!;
  }

  /** The embedding unit's parameter shapes (all the embedding's backward reads of them). */
  private embeddingShapes(u: number): EmbeddingParams {
    const shape = (name: string) => ({ shape: this.layout.entries.find((e) => e.name === name && e.offset >= this.units[u].start && e.offset < this.units[u].end)!.shape });
    if (this.rope) return { wte: shape('wte.weight') } as unknown as EmbeddingParams;
    return { wte: shape('wte.weight'), wpe: shape('wpe.weight') } as unknown as EmbeddingParams;
  }

  private addInto(grads: ReadonlyMap<number, UnitGradBuffer>, unit: number, dParams: ParamGrads): void {
    const buf = gradOf(grads, unit);
    const offsets = this.localOffsets[unit];
    for (const [name, values] of Object.entries(dParams)) {
      const at = offsets.get(name);
      if (at === undefined && buf.addNamed) {
        buf.addNamed(name, values); // a parameter this layout does not hold (LoRA's adapters: lora/lora-segments.ts)
        continue;
      }
      if (at === undefined) throw new Error(`internal: unit ${this.units[unit].name} has no parameter ${name}`);
      buf.add(at, values);
    }
  }
}

/** The segment chain of a config (see the file comment): embedding, one per block, head. */
export function segmentSpecs(config: GPTConfig): SegmentSpec[] {
  const L = config.layers;
  const head = isTiedHead(config) ? [L + 1, 0] : [L + 1];
  return [
    { name: 'embedding', forwardUnits: [0], backwardUnits: [], gradUnits: [0] },
    ...Array.from({ length: L }, (_, i) => ({ name: `h.${i}`, forwardUnits: [i + 1], backwardUnits: [i + 1], gradUnits: [i + 1], recomputable: true })),
    { name: 'head', forwardUnits: head, backwardUnits: head, gradUnits: head },
  ];
}

/** Bytes of each unit's compute tensors for the whole model (GPTSegments.unitCosts of one worker). */
export function unitComputeCosts(config: GPTConfig, kernels: KernelSet): (ParamUnit & { computeBytes: number })[] {
  return new GPTSegments(config, { kernels }).unitCosts();
}

function unitOf(params: ReadonlyMap<number, UnitParams>, unit: number): UnitParams {
  const p = params.get(unit);
  if (p === undefined) throw new Error(`internal: unit ${unit} parameters were not provided`);
  return p;
}

function gradOf(grads: ReadonlyMap<number, UnitGradBuffer>, unit: number): UnitGradBuffer {
  const g = grads.get(unit);
  if (g === undefined) throw new Error(`internal: no gradient buffer for unit ${unit}`);
  return g;
}

function input(x: tf.Tensor | null, seg: number): tf.Tensor {
  if (x === null) throw new Error(`internal: segment ${seg} needs an input tensor`);
  return x;
}
