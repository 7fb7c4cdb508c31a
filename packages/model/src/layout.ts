import type { GPTConfig } from './config.js';
import { familyOf, ffnHiddenOf, isTiedHead, kvHeadsOf } from './config.js';

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
 * A Llama block's parameters in flat order (local name, shape), from the config. Linear weights
 * are in this trainer's orientation [in, out] (y = x W), the transpose of Hugging Face's
 * nn.Linear [out, in] (hf-names.ts maps them); there are no biases. D = dModel / heads:
 *   ln_1 = input_layernorm, ln_2 = post_attention_layernorm (RMSNorm weights)
 *   q_proj [C, H D], k_proj and v_proj [C, KV D], o_proj [H D, C]
 *   gate_proj and up_proj [C, F], down_proj [F, C]
 */
export function llamaBlockParamShapes(config: GPTConfig): [string, number[]][] {
  const C = config.dModel;
  const D = C / config.heads;
  const H = config.heads;
  const KV = kvHeadsOf(config);
  const F = ffnHiddenOf(config);
  return [
    ['ln_1.weight', [C]],
    ['attn.q_proj.weight', [C, H * D]],
    ['attn.k_proj.weight', [C, KV * D]],
    ['attn.v_proj.weight', [C, KV * D]],
    ['attn.o_proj.weight', [H * D, C]],
    ['ln_2.weight', [C]],
    ['mlp.gate_proj.weight', [C, F]],
    ['mlp.up_proj.weight', [C, F]],
    ['mlp.down_proj.weight', [F, C]],
  ];
}

/** The per-block parameters of a config's family (blockParamShapes or llamaBlockParamShapes). */
export function blockShapesOf(config: GPTConfig): [string, number[]][] {
  return familyOf(config) === 'llama' ? llamaBlockParamShapes(config) : blockParamShapes(config.dModel);
}

/**
 * The flat layout. gpt2: wte [V,C], wpe [T,C], then per block the 12 tensors of
 * blockParamShapes, then ln_f.weight, ln_f.bias; names and orientation are exactly Hugging Face
 * GPT-2's, so exporting is a straight copy; the output head is tied to wte. llama: wte [V,C]
 * (embed_tokens), per block llamaBlockParamShapes, ln_f.weight (model.norm), then lm_head.weight
 * [V,C] unless the head is tied.
 */
export function paramLayout(config: GPTConfig): ParamLayout {
  const C = config.dModel;
  const llama = familyOf(config) === 'llama';
  const entries: ParamEntry[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], block: number): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape, offset, size, block });
    offset += size;
  };
  add('wte.weight', [config.vocabSize, C], -1);
  if (!llama) add('wpe.weight', [config.contextLength, C], -1);
  const blockRanges: { start: number; end: number }[] = [];
  const shapes = blockShapesOf(config);
  for (let i = 0; i < config.layers; i++) {
    const start = offset;
    for (const [local, shape] of shapes) add(`h.${i}.${local}`, shape, i);
    blockRanges.push({ start, end: offset });
  }
  add('ln_f.weight', [C], config.layers);
  if (!llama) add('ln_f.bias', [C], config.layers);
  if (!isTiedHead(config)) add('lm_head.weight', [config.vocabSize, C], config.layers);
  return { entries, totalSize: offset, blockRanges };
}

/** Total parameter count (tied head counted once). */
export function parameterCount(config: GPTConfig): number {
  return paramLayout(config).totalSize;
}

/**
 * The flat vector as contiguous parameter units, the granules an engine gathers, computes and
 * frees together (ZeRO-3) or assigns to a pipeline stage:
 *   0: 'embedding' (wte, wpe)   1..L: 'h.0' .. 'h.{L-1}'   L+1: 'final' (ln_f, an untied lm_head)
 * A tied output head reads the embedding unit (wte).
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
  return layout.entries.filter((e) => e.name.startsWith('ln_f.') || e.name === 'lm_head.weight').reduce((s, e) => s + e.size, 0);
}
