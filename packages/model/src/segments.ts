/**
 * The GPT as a chain of segments over parameter units, for engines that run communication
 * between layers: ZeRO-3 gathers a unit's parameters just before a segment runs and frees them
 * after; activation checkpointing re-runs a segment's forward in backward; a pipeline stage runs
 * a sub-chain. Same layers and math as GPT.forwardBackward, driven one segment at a time.
 *
 *   segment 0        embedding     reads unit 0 (wte, wpe)     backward reads nothing
 *   segment 1..L     block h.i     reads unit i+1
 *   segment L+1      ln_f + head   reads units L+1 (ln_f) and 0 (wte, tied head)
 *
 * Gradients are ADDED into caller-owned unit-length buffers (unit.start-relative, flat layout),
 * so a unit's gradient can be reduced as soon as the last segment contributing to it is done.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from './config.js';
import { validateConfig } from './config.js';
import { checkBatch } from './model-input.js';
import { Block } from './layers/block.js';
import type { Saved, ParamGrads } from './layers/layer.js';
import type { KernelSet, LayerSet } from './layers/layer-set.js';
import { kernelSetFor, makeLayerSet } from './layers/layer-set.js';
import type { ParamLayout, ParamUnit } from './layout.js';
import { paramLayout, paramUnits } from './layout.js';
import type { UnitParams } from './model-params.js';
import { uploadUnit } from './model-params.js';
import type { TensorParallelGroup } from './tensor-parallel/mappings.js';
import { TensorParallelBlock } from './tensor-parallel/parallel-block.js';
import { localFromGlobal, placeShard, tensorParallelLayout, type TPLayout } from './tensor-parallel/tp-layout.js';
import { VocabParallelEmbedding, VocabParallelHead } from './tensor-parallel/vocab-parallel.js';

export interface SegmentSpec {
  name: string;
  /** Units whose parameters the segment's forward reads. */
  forwardUnits: number[];
  /** Units whose parameters its backward reads (the embedding's needs none). */
  backwardUnits: number[];
  /** Units its backward adds gradients to. */
  gradUnits: number[];
}

export interface SegmentBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
}

export interface SegmentForward {
  /** The segment's output activation (null for the last segment). */
  y: tf.Tensor | null;
  /** What backward needs (release() it if backward will not run). */
  saved: Saved;
  /** The last segment's mean loss over counted targets. */
  loss?: { loss: number; count: number };
}

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
  /** Split the model over this tensor-parallel group (Megatron-LM); absent or of size 1: no split. */
  tensorParallel?: TensorParallelGroup;
}

/** The tensor-parallel pieces of a model split over a group of more than one rank. */
interface TensorParallelParts {
  group: TensorParallelGroup;
  block: TensorParallelBlock;
  embedding: VocabParallelEmbedding;
  head: VocabParallelHead;
}

export class GPTSegments {
  readonly config: GPTConfig;
  /** This rank's flat layout: the full model's, or its tensor-parallel shard's (tp-layout.ts). */
  readonly layout: ParamLayout;
  readonly units: ParamUnit[];
  readonly segments: SegmentSpec[];
  readonly totalSize: number;
  /** Weight-decay ranges of the flat vector: matrices and embeddings (rank >= 2). */
  readonly decayRanges: { start: number; end: number }[];
  /** Ranges of parameters identical on every tensor-parallel rank (counted once in norms). */
  readonly replicatedRanges: { start: number; end: number }[];
  private readonly layers: LayerSet;
  private readonly block: Block;
  private readonly tp: TensorParallelParts | null;
  /** Per unit: local parameter name -> offset inside the unit. */
  private readonly localOffsets: Map<string, number>[];

  constructor(config: GPTConfig, options: GPTSegmentsOptions = {}) {
    validateConfig(config);
    this.config = { ...config };
    const group = options.tensorParallel && options.tensorParallel.size > 1 ? options.tensorParallel : undefined;
    const T = group?.size ?? 1;
    const tpLayout = group ? tensorParallelLayout(config, T, group.rank) : null;
    this.layout = tpLayout ?? paramLayout(config);
    this.units = paramUnits(this.layout);
    this.totalSize = this.layout.totalSize;
    this.decayRanges = this.layout.entries.filter((e) => e.shape.length >= 2).map((e) => ({ start: e.offset, end: e.offset + e.size }));
    this.replicatedRanges = tpLayout ? tpLayout.entries.filter((e) => e.replicated).map((e) => ({ start: e.offset, end: e.offset + e.size })) : [];
    this.layers = makeLayerSet(options.kernels ?? kernelSetFor(tf.getBackend()), config.heads / T, config.layerNormEps);
    this.block = new Block(this.layers);
    if (group && tpLayout) {
      const vocabStart = tpLayout.entries[0].shard.rows![0];
      const head = this.layers.head;
      this.tp = {
        group,
        block: new TensorParallelBlock(this.layers, group),
        embedding: new VocabParallelEmbedding(group, vocabStart),
        head: new VocabParallelHead(group, vocabStart, (p, x) => head.logits(p, x)),
      };
    } else {
      this.tp = null;
    }
    this.segments = segmentSpecs(config);
    this.localOffsets = this.units.map((u) => {
      const m = new Map<string, number>();
      for (const e of this.layout.entries) {
        if (e.offset < u.start || e.offset >= u.end) continue;
        const local = u.name.startsWith('h.') ? e.name.slice(u.name.length + 1) : e.name;
        m.set(local, e.offset - u.start);
      }
      return m;
    });
  }

  /** This rank's flat vector from the full model's (a copy; the full vector itself without tensor parallelism). */
  shardOf(full: Float32Array): Float32Array {
    if (!this.tp) return new Float32Array(full);
    return localFromGlobal(this.layout as TPLayout, paramLayout(this.config), full);
  }

  /**
   * Writes this rank's values into a full-size vector. With `withReplicated` false, parameters
   * every tensor-parallel rank holds are left out, so summing the vectors of all ranks (an
   * all-reduce) assembles the full model once.
   */
  placeInto(local: Float32Array, full: Float32Array, withReplicated: boolean): void {
    if (!this.tp) {
      full.set(local);
      return;
    }
    const fullLayout = paramLayout(this.config);
    (this.layout as TPLayout).entries.forEach((e, i) => {
      if (e.replicated && !withReplicated) return;
      const g = fullLayout.entries[i];
      placeShard(local.subarray(e.offset, e.offset + e.size), e.shard, full.subarray(g.offset, g.offset + g.size));
    });
  }

  /** Builds a unit's tensors from its slice of the flat vector (flat.subarray(u.start, u.end)). */
  upload(unit: number, values: Float32Array): UnitParams {
    const p = uploadUnit(this.layout, this.units[unit], values, this.layers.usesTransposedWeights);
    if (this.tp && p.block) {
      // Row-parallel layers run with zero biases; the real biases are added after the all-reduce.
      const zeros = [tf.zeros([this.config.dModel]), tf.zeros([this.config.dModel])];
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
    const last = this.segments.length - 1;
    const tp = this.tp;
    if (seg === 0) {
      checkBatch(this.config, mb.tokens, mb.batch, mb.targets);
      const emb = unitOf(params, 0).embedding!;
      const r = tp
        ? await tp.embedding.forward(emb, mb.tokens, mb.batch, train)
        : this.layers.embedding.forward(emb, { tokens: mb.tokens, batch: mb.batch }, train); // [B*T] -> [B, T, C]
      return { y: r.y, saved: r.saved };
    }
    if (seg < last) {
      const unit = unitOf(params, seg);
      const r = tp ? await tp.block.forward(unit.tpBlock!, input(x, seg), train) : this.block.forward(unit.block!, input(x, seg), train);
      return { y: r.y, saved: r.saved };
    }
    const lnf = this.layers.layerNorm.forward(unitOf(params, last).lnf!, input(x, seg), train);
    try {
      const headParams = unitOf(params, 0).embedding!.head;
      const head = tp ? await tp.head.forward(headParams, lnf.y, mb.targets, train) : this.layers.head.forward(headParams, lnf.y, mb.targets, train);
      return { y: null, saved: new HeadSegmentSaved(lnf.saved, head.saved), loss: { loss: head.loss, count: head.count } };
    } finally {
      lnf.y.dispose();
    }
  }

  /**
   * Backward of one segment: adds gradScale-weighted parameter gradients into `grads` (unit index
   * -> unit-length buffer) and returns the input gradient (null for the embedding).
   * Consumes `saved`. For the last segment `dy` is null and gradScale scales d(mean loss).
   */
  async backward(seg: number, params: ReadonlyMap<number, UnitParams>, saved: Saved, dy: tf.Tensor | null, gradScale: number, grads: ReadonlyMap<number, Float32Array>): Promise<tf.Tensor | null> {
    const last = this.segments.length - 1;
    const tp = this.tp;
    if (seg === 0) {
      const g = gradOf(grads, 0);
      const [wteEntry, wpeEntry] = [this.layout.entries[0], this.layout.entries[1]];
      const dwte = g.subarray(wteEntry.offset, wteEntry.offset + wteEntry.size);
      const dwpe = g.subarray(wpeEntry.offset, wpeEntry.offset + wpeEntry.size);
      type EmbSaved = Parameters<LayerSet['embedding']['backwardInto']>[0];
      if (tp) tp.embedding.backwardInto(saved as EmbSaved, input(dy, seg), dwte, dwpe);
      else this.layers.embedding.backwardInto(saved as EmbSaved, input(dy, seg), dwte, dwpe);
      return null;
    }
    if (seg < last) {
      const unit = unitOf(params, seg);
      type Saved_ = Parameters<Block['backward']>[1];
      const r = tp ? await tp.block.backward(unit.tpBlock!, saved as Saved_, input(dy, seg)) : this.block.backward(unit.block!, saved as Saved_, input(dy, seg));
      this.addInto(grads, seg, r.dParams);
      return r.dx;
    }
    const { lnf: lnfSaved, head: headSaved } = saved as HeadSegmentSaved;
    const headParams = unitOf(params, 0).embedding!.head;
    const hb = tp
      ? await tp.head.backward(headParams, headSaved, gradScale)
      : this.layers.head.backward(headParams, headSaved as Parameters<LayerSet['head']['backward']>[1], gradScale);
    this.addInto(grads, 0, { 'wte.weight': hb.dParams.wte });
    const lb = this.layers.layerNorm.backward(unitOf(params, last).lnf!, lnfSaved as Parameters<LayerSet['layerNorm']['backward']>[1], hb.dx);
    hb.dx.dispose();
    this.addInto(grads, last, { 'ln_f.weight': lb.dParams.weight, 'ln_f.bias': lb.dParams.bias });
    return lb.dx;
  }

  private addInto(grads: ReadonlyMap<number, Float32Array>, unit: number, dParams: ParamGrads): void {
    const g = gradOf(grads, unit);
    const offsets = this.localOffsets[unit];
    for (const [name, values] of Object.entries(dParams)) {
      const at = offsets.get(name);
      if (at === undefined) throw new Error(`internal: unit ${this.units[unit].name} has no parameter ${name}`);
      for (let i = 0; i < values.length; i++) g[at + i] += values[i];
    }
  }
}

/** The segment chain of a config (see the file comment): embedding, one per block, head. */
export function segmentSpecs(config: GPTConfig): SegmentSpec[] {
  const L = config.layers;
  return [
    { name: 'embedding', forwardUnits: [0], backwardUnits: [], gradUnits: [0] },
    ...Array.from({ length: L }, (_, i) => ({ name: `h.${i}`, forwardUnits: [i + 1], backwardUnits: [i + 1], gradUnits: [i + 1] })),
    { name: 'head', forwardUnits: [L + 1, 0], backwardUnits: [L + 1, 0], gradUnits: [L + 1, 0] },
  ];
}

/**
 * Bytes of each unit's uploaded tensors: 4 per element, plus a transposed copy of every matrix
 * (block weights and wte) with the host kernel set, which multiplies by W^T (model-params.ts).
 */
export function unitComputeCosts(config: GPTConfig, kernels: KernelSet): (ParamUnit & { computeBytes: number })[] {
  const layout = paramLayout(config);
  return paramUnits(layout).map((u) => {
    let elements = 0;
    for (const e of layout.entries) {
      if (e.offset < u.start || e.offset >= u.end) continue;
      const transposed = kernels === 'host' && e.shape.length === 2 && (e.name === 'wte.weight' || e.name.startsWith('h.'));
      elements += e.size * (transposed ? 2 : 1);
    }
    return { ...u, computeBytes: 4 * elements };
  });
}

function unitOf(params: ReadonlyMap<number, UnitParams>, unit: number): UnitParams {
  const p = params.get(unit);
  if (p === undefined) throw new Error(`internal: unit ${unit} parameters were not provided`);
  return p;
}

function gradOf(grads: ReadonlyMap<number, Float32Array>, unit: number): Float32Array {
  const g = grads.get(unit);
  if (g === undefined) throw new Error(`internal: no gradient buffer for unit ${unit}`);
  return g;
}

function input(x: tf.Tensor | null, seg: number): tf.Tensor {
  if (x === null) throw new Error(`internal: segment ${seg} needs an input tensor`);
  return x;
}
