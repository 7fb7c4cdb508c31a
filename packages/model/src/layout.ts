import type { GPTConfig } from './config.js';

/** One parameter tensor inside the flat fp32 parameter vector. */
export interface ParamEntry {
  /** Hugging Face GPT-2 name without the `transformer.` prefix, e.g. `h.0.attn.c_attn.weight`. */
  name: string;
  /** Shape in Hugging Face orientation: linear weights are [in, out] (y = x W + b). */
  shape: number[];
  /** First element in the flat vector. */
  offset: number;
  /** Number of elements (product of shape). */
  size: number;
  /** Owning block: -1 for the embeddings (wte, wpe), 0..layers-1 for h.i.*, layers for ln_f. */
  block: number;
}

export interface ParamLayout {
  /** Every parameter, in flat-vector order. */
  entries: ParamEntry[];
  /** Length of the flat vector. */
  totalSize: number;
  /** blockRanges[i] = [start, end) of block h.i in the flat vector (contiguous by construction). */
  blockRanges: { start: number; end: number }[];
}

/** The per-block parameters in flat order: local name and shape as a function of C. */
export function blockParamShapes(C: number): [string, number[]][] {
  return [
    ['ln_1.weight', [C]],
    ['ln_1.bias', [C]],
    ['attn.c_attn.weight', [C, 3 * C]], // q, k, v concatenated on the output axis
    ['attn.c_attn.bias', [3 * C]],
    ['attn.c_proj.weight', [C, C]],
    ['attn.c_proj.bias', [C]],
    ['ln_2.weight', [C]],
    ['ln_2.bias', [C]],
    ['mlp.c_fc.weight', [C, 4 * C]],
    ['mlp.c_fc.bias', [4 * C]],
    ['mlp.c_proj.weight', [4 * C, C]],
    ['mlp.c_proj.bias', [C]],
  ];
}

/**
 * The flat layout: wte [V,C], wpe [T,C], then per block the 12 tensors of blockParamShapes, then
 * ln_f.weight, ln_f.bias. Names and orientation are exactly Hugging Face GPT-2's, so exporting
 * is a straight copy. The output head is tied to wte (no separate lm_head).
 */
export function paramLayout(config: GPTConfig): ParamLayout {
  const C = config.dModel;
  const entries: ParamEntry[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], block: number): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape, offset, size, block });
    offset += size;
  };
  add('wte.weight', [config.vocabSize, C], -1);
  add('wpe.weight', [config.contextLength, C], -1);
  const blockRanges: { start: number; end: number }[] = [];
  for (let i = 0; i < config.layers; i++) {
    const start = offset;
    for (const [local, shape] of blockParamShapes(C)) add(`h.${i}.${local}`, shape, i);
    blockRanges.push({ start, end: offset });
  }
  add('ln_f.weight', [C], config.layers);
  add('ln_f.bias', [C], config.layers);
  return { entries, totalSize: offset, blockRanges };
}

/** Total parameter count (tied head counted once). */
export function parameterCount(config: GPTConfig): number {
  return paramLayout(config).totalSize;
}

/**
 * The flat vector as contiguous parameter units, the granules an engine gathers, computes and
 * frees together (ZeRO-3) or assigns to a pipeline stage:
 *   0: 'embedding' (wte, wpe)   1..L: 'h.0' .. 'h.{L-1}'   L+1: 'final' (ln_f)
 * The output head reads the embedding unit (tied wte).
 */
export interface ParamUnit {
  name: string;
  start: number;
  end: number;
}

export function paramUnits(layout: ParamLayout): ParamUnit[] {
  const firstBlock = layout.blockRanges.length ? layout.blockRanges[0].start : layout.totalSize - lnfSize(layout);
  const lastBlock = layout.blockRanges.length ? layout.blockRanges[layout.blockRanges.length - 1].end : firstBlock;
  return [
    { name: 'embedding', start: 0, end: firstBlock },
    ...layout.blockRanges.map((r, i) => ({ name: `h.${i}`, start: r.start, end: r.end })),
    { name: 'final', start: lastBlock, end: layout.totalSize },
  ];
}

function lnfSize(layout: ParamLayout): number {
  return layout.entries.filter((e) => e.name.startsWith('ln_f.')).reduce((s, e) => s + e.size, 0);
}
