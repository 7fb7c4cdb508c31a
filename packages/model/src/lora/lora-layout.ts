/**
 * The trained parameters of a LoRA run: the adapters only, as their own flat vector of units
 * (one per block of this rank's pipeline stage), so ZeRO partitions, gradient reductions,
 * checkpoints and norms see nothing of the frozen base.
 *
 * For every block h.i and adapted linear (e.g. attn.q_proj, W [in, out]):
 *   h.i.attn.q_proj.lora_A.weight   [in, r]    Kaiming-uniform U(-1/sqrt(in), 1/sqrt(in))
 *   h.i.attn.q_proj.lora_B.weight   [r, out]   zeros
 * (this trainer's [in, out] orientation; PEFT stores lora_A.weight [r, in], lora_B.weight [out, r]).
 *
 * Tensor parallel: each adapter is split the way its base is (lora-linear.ts has the math): a
 * base split by rows (row-parallel) splits A by the same rows and replicates B; a base split by
 * columns (column-parallel) splits B by the same columns and replicates A. Replicated factors are
 * marked `replicated` (counted once in norms, written once in checkpoints), and every entry
 * carries its shard of the full tensor, so checkpoints and resharding need nothing special.
 */
import type { GPTConfig } from '../config.js';
import type { ParamEntry, ParamUnit } from '../layout.js';
import { paramLayout, paramUnits } from '../layout.js';
import type { LoraConfig } from './lora-config.js';
import { loraTargetLinears } from './lora-config.js';
import { fillUniforms, hashString } from '../prng.js';
import { forEachFullRun } from '../tensor-parallel/shard-runs.js';
import type { TensorShard } from '../tensor-parallel/tp-layout.js';

export interface LoraParamEntry extends ParamEntry {
  shard?: TensorShard;
  replicated?: boolean;
  /** The adapted linear, block-local ('attn.q_proj'), and which factor this is. */
  linear: string;
  factor: 'A' | 'B';
}

export interface LoraLayout {
  entries: LoraParamEntry[];
  totalSize: number;
  /** One unit per block of the stage, named like the block (h.i). */
  units: ParamUnit[];
  /** For adapter unit j, the index of its block in the base model's (stage) units. */
  baseUnitOf: number[];
}

type BaseEntry = ParamEntry & { shard?: TensorShard; replicated?: boolean };

/**
 * The adapters of `linears` for the block units among `baseUnits` (the base stage layout's units
 * and entries, tensor-parallel shards included).
 */
export function loraLayout(baseEntries: readonly BaseEntry[], baseUnits: readonly ParamUnit[], linears: readonly string[], rank: number): LoraLayout {
  const entries: LoraParamEntry[] = [];
  const units: ParamUnit[] = [];
  const baseUnitOf: number[] = [];
  let offset = 0;
  const add = (e: Omit<LoraParamEntry, 'offset' | 'size'>): void => {
    const size = e.shape.reduce((a, b) => a * b, 1);
    entries.push({ ...e, offset, size });
    offset += size;
  };
  baseUnits.forEach((u, b) => {
    if (!u.name.startsWith('h.')) return;
    const start = offset;
    for (const linear of linears) {
      const name = `${u.name}.${linear}`;
      const base = baseEntries.find((e) => e.name === `${name}.weight`);
      if (!base) throw new Error(`internal: ${name}.weight is not in the base layout`);
      const [inLocal, outLocal] = base.shape;
      const g = base.shard?.globalShape ?? base.shape;
      const block = base.block;
      add({
        name: `${name}.lora_A.weight`, shape: [inLocal, rank], block, linear, factor: 'A',
        ...(base.shard ? { shard: { globalShape: [g[0], rank], ...(base.shard.rows ? { rows: base.shard.rows } : {}) }, replicated: !base.shard.rows } : {}),
      });
      add({
        name: `${name}.lora_B.weight`, shape: [rank, outLocal], block, linear, factor: 'B',
        ...(base.shard ? { shard: { globalShape: [rank, g[1]], ...(base.shard.cols ? { cols: base.shard.cols } : {}) }, replicated: !base.shard.cols } : {}),
      });
    }
    units.push({ name: u.name, start, end: offset });
    baseUnitOf.push(b);
  });
  return { entries, totalSize: offset, units, baseUnitOf };
}

/** The adapters of the whole model (one worker's layout): the tensors a LoRA checkpoint's manifest lists. */
export function fullLoraLayout(config: GPTConfig, lora: LoraConfig): LoraLayout {
  const full = paramLayout(config);
  return loraLayout(full.entries, paramUnits(full), loraTargetLinears(config, lora), lora.rank);
}

/**
 * Elements [start, end) of the adapters' initial flat vector: A Kaiming-uniform (PEFT's
 * kaiming_uniform_(a = sqrt(5)) on [r, in]: bound = gain sqrt(3 / fan_in) = 1 / sqrt(in), in the
 * full tensor's in), B zeros. Counter-based like init.ts: element k of the full A of `name` is
 * element k of the uniform stream (seed, hash(name)) whatever the layout, so a tensor-parallel
 * shard or ZeRO piece computes exactly its own elements and every layout starts equal. The
 * stream walks the full A in PEFT's [r, in] order (full element (i, j) of our [in, r] is PEFT's
 * (j, i)), so the same seed gives the same adapter as a PEFT-ordered reading would.
 */
export function initLoraRange(entries: readonly LoraParamEntry[], seed: number, start: number, end: number): Float32Array {
  const out = new Float32Array(end - start);
  const one = new Float32Array(1);
  for (const e of entries) {
    const lo = Math.max(start, e.offset);
    const hi = Math.min(end, e.offset + e.size);
    if (lo >= hi || e.factor === 'B') continue; // B: zeros
    const [inFull, r] = e.shard?.globalShape ?? e.shape;
    const bound = 1 / Math.sqrt(inFull);
    const stream = hashString(e.name);
    forEachFullRun(e.shard, lo - e.offset, hi - e.offset, (full, local, n) => {
      for (let k = 0; k < n; k++) {
        const i = Math.floor((full + k) / r);
        const j = (full + k) % r;
        fillUniforms(one, seed, stream, j * inFull + i, bound);
        out[e.offset + local + k - start] = one[0];
      }
    });
  }
  return out;
}
