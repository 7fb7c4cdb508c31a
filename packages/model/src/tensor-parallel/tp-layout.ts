/**
 * The parameters one tensor-parallel rank holds (Megatron-LM's split), as its own flat vector.
 *
 * With T ranks in the tensor-parallel group, rank t keeps:
 *   wte.weight            rows  V_t = shardRange(V, T, t)             vocab-parallel embedding / head
 *   attn.c_attn.{w,b}     columns of its heads in each of q, k, v    column-parallel: [C, 3C/T]
 *   attn.c_proj.weight    rows of its heads                          row-parallel:    [C/T, C]
 *   mlp.c_fc.{w,b}        columns [t 4C/T, (t+1) 4C/T)               column-parallel: [C, 4C/T]
 *   mlp.c_proj.weight     rows    [t 4C/T, (t+1) 4C/T)               row-parallel:    [4C/T, C]
 *   everything else       replicated (wpe, LayerNorms, the row-parallel layers' biases, ln_f)
 * and of a Llama (no biases; H query heads, KV key/value heads of size D, SwiGLU width F):
 *   wte.weight, lm_head.weight  rows V_t                                vocab-parallel
 *   attn.q_proj.weight    columns of its H/T query heads              column-parallel: [C, H D/T]
 *   attn.k_proj/v_proj    columns of its KV/T key/value heads         column-parallel: [C, KV D/T]
 *   attn.o_proj.weight    rows of its query heads                     row-parallel:    [H D/T, C]
 *   mlp.gate_proj/up_proj columns [t F/T, (t+1) F/T)                  column-parallel: [C, F/T]
 *   mlp.down_proj.weight  rows    [t F/T, (t+1) F/T)                  row-parallel:    [F/T, C]
 *   RMSNorm weights       replicated
 * in the same order and with the same names as the full layout, so units, ZeRO and checkpoints
 * work on it unchanged. A shard is described by the rows and column ranges of the full tensor
 * it holds, which is also how shards are gathered back into the full model.
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from '../codes.js';
import type { GPTConfig } from '../config.js';
import { familyOf, ffnHiddenOf, kvHeadsOf } from '../config.js';
import type { ParamEntry, ParamLayout } from '../layout.js';
import { paramLayout } from '../layout.js';
import { forEachFullRun } from './shard-runs.js';

export interface TensorShard {
  /** Shape of the full tensor. */
  globalShape: number[];
  /** Rows [start, end) of the full tensor (a 1-D tensor's elements); all rows when absent. */
  rows?: [number, number];
  /** Column ranges of a 2-D tensor (or element ranges of a 1-D one), concatenated in order. */
  cols?: [number, number][];
}

export interface TPParamEntry extends ParamEntry {
  shard: TensorShard;
  /** Identical on every rank of the tensor-parallel group (its gradient too). */
  replicated: boolean;
}

export interface TPLayout extends ParamLayout {
  entries: TPParamEntry[];
  tpSize: number;
  tpRank: number;
}

/** Balanced split (the same rule as comm's shardRange). */
export function splitRange(length: number, parts: number, index: number): [number, number] {
  const base = Math.floor(length / parts);
  const extra = length % parts;
  const start = index * base + Math.min(index, extra);
  return [start, start + base + (index < extra ? 1 : 0)];
}

export function checkTensorParallel(config: GPTConfig, tpSize: number): void {
  if (!Number.isInteger(tpSize) || tpSize < 1) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `tensor-parallel size ${tpSize} is not a positive integer`, { hint: 'use --tp 1, 2, 4, ...' });
  }
  if (config.heads % tpSize !== 0) {
    throw new TrainerError('TRAINER_ERR_TP_INDIVISIBLE', `the model's ${config.heads} attention heads do not divide among ${tpSize} tensor-parallel ranks`, {
      hint: `choose --tp among the divisors of ${config.heads}, or change --heads`,
      details: { heads: config.heads, tp: tpSize },
    });
  }
  const kv = kvHeadsOf(config);
  if (kv % tpSize !== 0) {
    throw new TrainerError('TRAINER_ERR_TP_INDIVISIBLE', `the model's ${kv} key/value heads do not divide among ${tpSize} tensor-parallel ranks`, {
      hint: `choose --tp among the divisors of ${kv} (each rank keeps whole key/value heads with the query heads that read them)`,
      details: { kvHeads: kv, tp: tpSize },
    });
  }
  const F = ffnHiddenOf(config);
  if (F % tpSize !== 0) {
    throw new TrainerError('TRAINER_ERR_TP_INDIVISIBLE', `the MLP's hidden size ${F} does not divide among ${tpSize} tensor-parallel ranks`, {
      hint: `choose --tp among the divisors of ${F}`,
      details: { hidden: F, tp: tpSize },
    });
  }
  if (config.vocabSize < tpSize) {
    throw new TrainerError('TRAINER_ERR_TP_INDIVISIBLE', `a vocabulary of ${config.vocabSize} cannot be split over ${tpSize} tensor-parallel ranks`, { hint: 'use a smaller --tp' });
  }
}

export function tensorParallelLayout(config: GPTConfig, tpSize: number, tpRank: number): TPLayout {
  checkTensorParallel(config, tpSize);
  const full = paramLayout(config);
  const C = config.dModel;
  const T = tpSize;
  const headCols = (C / T);
  const [h0] = [tpRank * headCols];
  const qkvCols: [number, number][] = [0, 1, 2].map((part) => [part * C + h0, part * C + h0 + headCols]);
  const F = ffnHiddenOf(config);
  const mlp: [number, number] = [tpRank * (F / T), (tpRank + 1) * (F / T)];
  const D = C / config.heads;
  const kvCols: [number, number] = [tpRank * (kvHeadsOf(config) / T) * D, (tpRank + 1) * (kvHeadsOf(config) / T) * D];
  const llama = familyOf(config) === 'llama';
  const shardOf = (e: ParamEntry): { shard: TensorShard; replicated: boolean } => {
    const g = { globalShape: e.shape };
    const local = e.name.replace(/^h\.\d+\./, '');
    if (llama) {
      switch (local) {
        case 'wte.weight':
        case 'lm_head.weight': return { shard: { ...g, rows: splitRange(config.vocabSize, T, tpRank) }, replicated: false };
        case 'attn.q_proj.weight': return { shard: { ...g, cols: [[h0, h0 + headCols]] }, replicated: false };
        case 'attn.k_proj.weight':
        case 'attn.v_proj.weight': return { shard: { ...g, cols: [kvCols] }, replicated: false };
        case 'attn.o_proj.weight': return { shard: { ...g, rows: [h0, h0 + headCols] }, replicated: false };
        case 'mlp.gate_proj.weight':
        case 'mlp.up_proj.weight': return { shard: { ...g, cols: [mlp] }, replicated: false };
        case 'mlp.down_proj.weight': return { shard: { ...g, rows: mlp }, replicated: false };
        default: return { shard: g, replicated: true };
      }
    }
    switch (local) {
      case 'wte.weight': return { shard: { ...g, rows: splitRange(config.vocabSize, T, tpRank) }, replicated: false };
      case 'attn.c_attn.weight':
      case 'attn.c_attn.bias': return { shard: { ...g, cols: qkvCols }, replicated: false };
      case 'attn.c_proj.weight': return { shard: { ...g, rows: [h0, h0 + headCols] }, replicated: false };
      case 'mlp.c_fc.weight':
      case 'mlp.c_fc.bias': return { shard: { ...g, cols: [mlp] }, replicated: false };
      case 'mlp.c_proj.weight': return { shard: { ...g, rows: mlp }, replicated: false };
      default: return { shard: g, replicated: true };
    }
  };
  const entries: TPParamEntry[] = [];
  const blockRanges: { start: number; end: number }[] = [];
  let offset = 0;
  for (const e of full.entries) {
    const { shard, replicated } = shardOf(e);
    const shape = localShape(shard);
    const size = shape.reduce((a, b) => a * b, 1);
    if (e.block >= 0 && e.block < config.layers && (blockRanges.length === e.block)) blockRanges.push({ start: offset, end: offset });
    entries.push({ ...e, shape, offset, size, shard, replicated });
    offset += size;
    if (e.block >= 0 && e.block < config.layers) blockRanges[e.block].end = offset;
  }
  return { entries, totalSize: offset, blockRanges, tpSize, tpRank };
}

export function localShape(s: TensorShard): number[] {
  const [r0, r1] = s.rows ?? [0, s.globalShape[0]];
  if (s.globalShape.length === 1) {
    const n = s.cols ? s.cols.reduce((a, [c0, c1]) => a + c1 - c0, 0) : r1 - r0;
    return [n];
  }
  const cols = s.cols ? s.cols.reduce((a, [c0, c1]) => a + c1 - c0, 0) : s.globalShape[1];
  return [r1 - r0, cols];
}

/** Copies a shard out of the full tensor's row-major values. */
export function extractShard(full: Float32Array, s: TensorShard): Float32Array {
  const shape = localShape(s);
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  forEachFullRun(s, 0, out.length, (src, dst, n) => out.set(full.subarray(src, src + n), dst));
  return out;
}

/** Writes a shard into the full tensor's row-major values. */
export function placeShard(local: Float32Array, s: TensorShard, full: Float32Array): void {
  forEachFullRun(s, 0, local.length, (src, dst, n) => full.set(local.subarray(dst, dst + n), src));
}

/** This rank's flat vector from the full model's flat vector. */
export function localFromGlobal(layout: TPLayout, fullLayout: ParamLayout, global: Float32Array): Float32Array {
  const out = new Float32Array(layout.totalSize);
  layout.entries.forEach((e, i) => {
    const g = fullLayout.entries[i];
    out.set(extractShard(global.subarray(g.offset, g.offset + g.size), e.shard), e.offset);
  });
  return out;
}

/** The full model's flat vector from every tensor-parallel rank's flat vector (rank order). */
export function globalFromLocals(config: GPTConfig, locals: readonly Float32Array[]): Float32Array {
  const fullLayout = paramLayout(config);
  const global = new Float32Array(fullLayout.totalSize);
  locals.forEach((local, t) => {
    const layout = tensorParallelLayout(config, locals.length, t);
    layout.entries.forEach((e, i) => {
      const g = fullLayout.entries[i];
      placeShard(local.subarray(e.offset, e.offset + e.size), e.shard, global.subarray(g.offset, g.offset + g.size));
    });
  });
  return global;
}
