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
  /** Every tensor of the unit (for dispose). */
  tensors: tf.Tensor[];
  /** The unit's parameter tensors in layout order (without transposed copies). */
  entryTensors: tf.Tensor[];
  dispose(): void;
}

function isMatMulWeight(e: ParamEntry): boolean {
  return e.shape.length === 2 && (e.name === 'wte.weight' || e.name.startsWith('h.'));
}

/**
 * Builds unit `unit` from `values`, the unit's own slice of the flat vector
 * (flat.subarray(unit.start, unit.end)) on the host, or a 1-D tensor of it (not disposed).
 */
export function uploadUnit(layout: ParamLayout, unit: ParamUnit, values: Float32Array | tf.Tensor, withTransposes: boolean): UnitParams {
  const n = values instanceof Float32Array ? values.length : values.size;
  if (n !== unit.end - unit.start) throw new Error(`internal: unit ${unit.name} needs ${unit.end - unit.start} values, got ${n}`);
  const entries = layout.entries.filter((e) => e.offset >= unit.start && e.offset < unit.end);
  const tensors = values instanceof Float32Array
    ? hostOp([], entries.map((e) => e.shape), (_, outs) =>
      entries.forEach((e, i) => outs[i].set(values.subarray(e.offset - unit.start, e.offset - unit.start + e.size))))
    : splitOnDevice(values, entries);
  const byName = new Map<string, tf.Tensor>();
  entries.forEach((e, i) => byName.set(e.name, tensors[i]));
  if (withTransposes) {
    for (const e of entries.filter(isMatMulWeight)) {
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
  if (unit.name === 'embedding') {
    const head: LMHeadParams = { wte: get('wte.weight') };
    const wteT = byName.get('wte.weight^T');
    if (wteT !== undefined) head.wteT = wteT;
    out.embedding = { wte: get('wte.weight'), wpe: get('wpe.weight'), head };
  } else if (unit.name === 'final') {
    out.lnf = { weight: get('ln_f.weight'), bias: get('ln_f.bias') };
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
export function uploadParams(_config: GPTConfig, layout: ParamLayout, flat: Float32Array, withTransposes: boolean): ModelParams {
  const units = paramUnits(layout).map((u) => uploadUnit(layout, u, flat.subarray(u.start, u.end), withTransposes));
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
