/**
 * The model's parameters as TF.js tensors, built from the flat fp32 vector in one host op
 * (one copy per parameter; on wasm straight into the heap). Host kernels also get the transposed
 * copies of the matMul weights (W^T for Linear backward, wte^T for the output head).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from './config.js';
import { hostOp } from './host/tensor-io.js';
import type { BlockParams } from './layers/block.js';
import type { EmbeddingParams } from './layers/embedding.js';
import type { LayerNormParams } from './layers/layernorm.js';
import type { LinearParams } from './layers/linear.js';
import { hostTranspose } from './layers/linear.js';
import type { LMHeadParams } from './layers/lm-head.js';
import type { ParamEntry, ParamLayout } from './layout.js';

export interface ModelParams {
  embedding: EmbeddingParams;
  blocks: BlockParams[];
  lnf: LayerNormParams;
  head: LMHeadParams;
  /** Every tensor above, once (for dispose). */
  tensors: tf.Tensor[];
}

function isMatMulWeight(e: ParamEntry): boolean {
  return e.shape.length === 2 && (e.name === 'wte.weight' || e.name.startsWith('h.'));
}

export function uploadParams(config: GPTConfig, layout: ParamLayout, flat: Float32Array, withTransposes: boolean): ModelParams {
  const transposed = withTransposes ? layout.entries.filter(isMatMulWeight) : [];
  const tensors = hostOp(
    [],
    layout.entries.map((e) => e.shape),
    (_, outs) => layout.entries.forEach((e, i) => outs[i].set(flat.subarray(e.offset, e.offset + e.size))),
  );
  const index = new Map(layout.entries.map((e, i) => [e.name, i]));
  for (const e of transposed) tensors.push(hostTranspose(tensors[index.get(e.name) as number]));
  const byName = new Map<string, tf.Tensor>();
  layout.entries.forEach((e, i) => byName.set(e.name, tensors[i]));
  transposed.forEach((e, i) => byName.set(`${e.name}^T`, tensors[layout.entries.length + i]));
  const get = (name: string): tf.Tensor => {
    const t = byName.get(name);
    if (t === undefined) throw new Error(`internal: parameter ${name} missing from the layout`);
    return t;
  };
  const linear = (prefix: string): LinearParams => {
    const p: LinearParams = { weight: get(`${prefix}.weight`), bias: get(`${prefix}.bias`) };
    const wT = byName.get(`${prefix}.weight^T`);
    if (wT !== undefined) p.weightT = wT;
    return p;
  };
  const blocks: BlockParams[] = [];
  for (let i = 0; i < config.layers; i++) {
    const h = `h.${i}`;
    blocks.push({
      ln1: { weight: get(`${h}.ln_1.weight`), bias: get(`${h}.ln_1.bias`) },
      cAttn: linear(`${h}.attn.c_attn`),
      cProj: linear(`${h}.attn.c_proj`),
      ln2: { weight: get(`${h}.ln_2.weight`), bias: get(`${h}.ln_2.bias`) },
      cFc: linear(`${h}.mlp.c_fc`),
      mlpProj: linear(`${h}.mlp.c_proj`),
    });
  }
  const wte = get('wte.weight');
  const head: LMHeadParams = { wte };
  const wteT = byName.get('wte.weight^T');
  if (wteT !== undefined) head.wteT = wteT;
  return {
    embedding: { wte, wpe: get('wpe.weight') },
    blocks,
    lnf: { weight: get('ln_f.weight'), bias: get('ln_f.bias') },
    head,
    tensors,
  };
}
