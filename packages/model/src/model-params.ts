/**
 * The model's parameters as TF.js tensors, built one parameter unit at a time from the unit's
 * flat values: host values are uploaded (one host op per unit, one copy per parameter; on wasm
 * straight into the heap), a flat backend tensor is split on the device (no host round trip).
 * Host kernels also get transposed copies of the matMul weights (W^T for Linear backward, wte^T
 * for the output head). An engine that keeps only some units resident (ZeRO-3) builds and
 * disposes units one by one; the whole model is all units at once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from './config.js';
import { familyOf, isTiedHead } from './config.js';
import type { LlamaBlockParams } from './layers/llama-block.js';
import type { RMSNormParams } from './layers/rmsnorm.js';
import { hostOp } from './host/tensor-io.js';
import type { BlockParams } from './layers/block.js';
import type { EmbeddingParams } from './layers/embedding.js';
import type { LayerNormParams } from './layers/layernorm.js';
import type { LinearParams } from './layers/linear.js';
import { hostTranspose } from './layers/linear.js';
import type { LMHeadParams } from './layers/lm-head.js';
import type { TPBlockParams } from './tensor-parallel/parallel-block.js';
import type { ParamEntry, ParamLayout, ParamUnit } from './layout.js';
import { paramUnits } from './layout.js';

export interface ModelParams {
  embedding: EmbeddingParams;
  blocks: BlockParams[];
  lnf: LayerNormParams;
  head: LMHeadParams;
  /** Every tensor above, once (for dispose). */
  tensors: tf.Tensor[];
  /** The parameter tensors in layout order (entries[i] -> entryTensors[i]). */
  entryTensors: tf.Tensor[];
}

/** One unit's tensors: exactly one of the fields is set, by the unit's kind. */
export interface UnitParams {
  embedding?: EmbeddingParams & { head: LMHeadParams };
  block?: BlockParams;
  /** Tensor-parallel blocks: the local shards with the row-parallel biases held apart. */
  tpBlock?: TPBlockParams;
  lnf?: LayerNormParams;
  /** Llama blocks (either family's blocks hold their tensor-parallel shards as they are; zero biases added). */
  llamaBlock?: LlamaBlockParams;
  /** Llama's final RMSNorm. */
  lnfRms?: RMSNormParams;
  /** An untied output head (lm_head.weight [V, C], in the final unit). */
  head?: LMHeadParams;
  /** LoRA adapters of a block unit, by block-local linear name ('attn.q_proj'); lora/lora-segments.ts. */
  adapters?: Map<string, { a: tf.Tensor; b: tf.Tensor }>;
  /** Every tensor of the unit (for dispose). */
  tensors: tf.Tensor[];
  /** The unit's parameter tensors in layout order (without transposed copies). */
  entryTensors: tf.Tensor[];
  dispose(): void;
}

function isMatMulWeight(e: ParamEntry, tiedHead: boolean): boolean {
  return e.shape.length === 2 && ((e.name === 'wte.weight' && tiedHead) || e.name === 'lm_head.weight' || e.name.startsWith('h.'));
}

/** What of the architecture decides how a unit's tensors are assembled. */
export interface UnitArchitecture {
  llama: boolean;
  tiedHead: boolean;
}

/** The architecture of a config (for uploadUnit). */
export function unitArchitecture(config: GPTConfig): UnitArchitecture {
  return { llama: familyOf(config) === 'llama', tiedHead: isTiedHead(config) };
}

/**
 * Builds unit `unit` from `values`, the unit's own slice of the flat vector
 * (flat.subarray(unit.start, unit.end)) on the host, or a 1-D tensor of it (not disposed).
 */
export function uploadUnit(layout: ParamLayout, unit: ParamUnit, values: Float32Array | tf.Tensor, withTransposes: boolean, arch: UnitArchitecture = { llama: false, tiedHead: true }): UnitParams {
  const n = values instanceof Float32Array ? values.length : values.size;
  if (n !== unit.end - unit.start) throw new Error(`internal: unit ${unit.name} needs ${unit.end - unit.start} values, got ${n}`);
  const entries = layout.entries.filter((e) => e.offset >= unit.start && e.offset < unit.end);
  const tensors = values instanceof Float32Array
    ? hostOp([], entries.map((e) => e.shape), (_, outs) =>
      entries.forEach((e, i) => outs[i].set(values.subarray(e.offset - unit.start, e.offset - unit.start + e.size))))
    : splitOnDevice(values, entries);
  const byName = new Map<string, tf.Tensor>();
  entries.forEach((e, i) => byName.set(e.name, tensors[i]));
  const tied = arch.tiedHead;
  if (withTransposes) {
    for (const e of entries.filter((x) => isMatMulWeight(x, tied))) {
      const t = hostTranspose(byName.get(e.name) as tf.Tensor);
      tensors.push(t);
      byName.set(`${e.name}^T`, t);
    }
  }
  const get = (name: string): tf.Tensor => {
    const t = byName.get(name);
    if (t === undefined) throw new Error(`internal: parameter ${name} missing from unit ${unit.name}`);
    return t;
  };
  const linear = (prefix: string): LinearParams => {
    const p: LinearParams = { weight: get(`${prefix}.weight`), bias: get(`${prefix}.bias`) };
    const wT = byName.get(`${prefix}.weight^T`);
    if (wT !== undefined) p.weightT = wT;
    return p;
  };
  const out: UnitParams = { tensors, entryTensors: tensors.slice(0, entries.length), dispose: () => tensors.forEach((t) => t.dispose()) };
  const headOf = (name: string): LMHeadParams => {
    const head: LMHeadParams = { wte: get(name) };
    const wT = byName.get(`${name}^T`);
    if (wT !== undefined) head.wteT = wT;
    return head;
  };
  const llama = arch.llama;
  if (unit.name === 'embedding') {
    out.embedding = llama ? { wte: get('wte.weight'), head: headOf('wte.weight') } : { wte: get('wte.weight'), wpe: get('wpe.weight'), head: headOf('wte.weight') };
  } else if (unit.name === 'final') {
    if (llama) out.lnfRms = { weight: get('ln_f.weight') };
    else out.lnf = { weight: get('ln_f.weight'), bias: get('ln_f.bias') };
    if (byName.has('lm_head.weight')) out.head = headOf('lm_head.weight');
  } else if (llama) {
    const h = unit.name;
    // Llama's linears have no biases; the kernel sets' Linear takes one, so each gets zeros (a fill kernel, nothing uploaded).
    const linear0 = (name: string): LinearParams => {
      const w = get(`${h}.${name}.weight`);
      const bias = tf.fill([(w.shape as number[])[1]], 0);
      tensors.push(bias);
      const p: LinearParams = { weight: w, bias };
      const wT = byName.get(`${h}.${name}.weight^T`);
      if (wT !== undefined) p.weightT = wT;
      return p;
    };
    out.llamaBlock = {
      ln1: { weight: get(`${h}.ln_1.weight`) },
      q: linear0('attn.q_proj'),
      k: linear0('attn.k_proj'),
      v: linear0('attn.v_proj'),
      o: linear0('attn.o_proj'),
      ln2: { weight: get(`${h}.ln_2.weight`) },
      gate: linear0('mlp.gate_proj'),
      up: linear0('mlp.up_proj'),
      down: linear0('mlp.down_proj'),
    };
  } else {
    const h = unit.name;
    out.block = {
      ln1: { weight: get(`${h}.ln_1.weight`), bias: get(`${h}.ln_1.bias`) },
      cAttn: linear(`${h}.attn.c_attn`),
      cProj: linear(`${h}.attn.c_proj`),
      ln2: { weight: get(`${h}.ln_2.weight`), bias: get(`${h}.ln_2.bias`) },
      cFc: linear(`${h}.mlp.c_fc`),
      mlpProj: linear(`${h}.mlp.c_proj`),
    };
  }
  return out;
}

/** A flat unit tensor cut into its parameters' tensors on the device (one split, then free reshapes). */
function splitOnDevice(flat: tf.Tensor, entries: readonly ParamEntry[]): tf.Tensor[] {
  return tf.tidy(() => {
    const parts = entries.length === 1 ? [flat] : tf.split(tf.reshape(flat, [flat.size]), entries.map((e) => e.size));
    return parts.map((p, i) => tf.reshape(p, entries[i].shape));
  });
}

/** Every unit at once: the whole model. */
export function uploadParams(config: GPTConfig, layout: ParamLayout, flat: Float32Array, withTransposes: boolean): ModelParams {
  const units = paramUnits(layout).map((u) => uploadUnit(layout, u, flat.subarray(u.start, u.end), withTransposes, unitArchitecture(config)));
  const emb = units[0].embedding!;
  return {
    embedding: { wte: emb.wte, wpe: emb.wpe },
    blocks: units.slice(1, -1).map((u) => u.block!),
    lnf: units[units.length - 1].lnf!,
    head: emb.head,
    tensors: units.flatMap((u) => u.tensors),
    entryTensors: units.flatMap((u) => u.entryTensors),
  };
}
