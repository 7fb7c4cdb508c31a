/**
 * LoRA dropout (PEFT's lora_dropout): y = x W + s dropout(x) A B, inverted dropout on the
 * adapter's input only, in training only. A parallel run must follow the single-process
 * trajectory, so the mask is no stateful RNG's: element (n, i) of the adapter input's rows is
 * kept or dropped by a counter-based hash of where it sits in the step's global batch,
 *
 *   h  = fmix32 chain over (seedLo, seedHi, step, hashString('h.3.attn.q_proj'), row, t)
 *   u  = fmix32(h ^ i)                          (unsigned 32-bit)
 *   dropped  <=>  u < floor(p * 2^32)           kept elements are scaled by 1 / (1 - p)
 *
 * where the chain is h_0 = 0x9e3779b9, h_{k+1} = fmix32(h_k ^ v_k) (murmur3's 32-bit finalizer,
 * a bijection with full avalanche), row is the sequence's index in the step's global batch (the
 * data-parallel rank's and the micro-batch's offset added), t the position in it and i the
 * global input feature (a row-parallel tensor-parallel shard adds its first feature). So data
 * parallel, gradient accumulation, tensor parallel (column-parallel bases see the same x and the
 * same mask on every rank; row-parallel ones mask their features by global index), pipeline
 * stages and activation checkpointing's recomputation all build the same mask as one worker.
 * Packed rows (several examples per row): the row index is the example's global index and t
 * its position in the example (the micro-batch carries each position's example), so a packed run
 * drops exactly what an unpacked one drops, whatever the packing.
 *
 * Cost: TF.js has no 32-bit integer xor/shift/wrapping multiply on every backend, so the mask is
 * built on the host (one fmix32 per element plus one chain per (row, t): ~10 integer ops per
 * element of x) as a Float32Array of 0 and 1 / (1 - p) and uploaded once per forward of an adapted
 * linear (4 bytes per element of x; a recomputation builds it again). The forward keeps it for the
 * backward (dX and dA use the same mask), so training holds one extra [N, in] tensor per adapted
 * linear beside the masked input it saves anyway.
 */
import { hashString } from '../prng.js';

/** Where an adapter's input sits in the step's global batch: everything the mask is a function of. */
export interface LoraDropoutSpec {
  /** The dropout probability p, in (0, 1). */
  p: number;
  /** The run's seed. */
  seed: number;
  /** The optimizer step. */
  step: number;
  /** The adapted linear's full name, e.g. 'h.3.attn.q_proj' (a layer and target: its own mask). */
  name: string;
  /** The global batch row of the input's first row (data-parallel rank and micro-batch offsets). */
  firstRow: number;
  /** Positions per row (T): input row n is global row firstRow + floor(n / T), position n mod T. */
  seqLen: number;
  /** The global index of the input's first feature (a row-parallel shard's first input row of W; else 0). */
  firstFeature: number;
  /**
   * Packed rows: per input row n (a position of the micro-batch), its example as an index from
   * firstRow (-1: padding, keyed as row 2^32 - 1: no loss reads it) and `positions[n]` its
   * position in the example. Absent: row n is position n mod T of row floor(n / T).
   */
  examples?: Int32Array;
  positions?: Int32Array;
}

/** murmur3's fmix32: a bijective 32-bit avalanche mix. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The chain h_0 = 0x9e3779b9, h_{k+1} = fmix32(h_k ^ v_k) over 32-bit words. */
export function hashChain(words: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const v of words) h = fmix32((h ^ v) >>> 0);
  return h;
}

/** The words before (row, t): the run's seed (low and high 32 bits), the step, the linear. */
function prefixWords(spec: LoraDropoutSpec): number[] {
  const seed = Math.trunc(spec.seed);
  return [seed >>> 0, Math.floor(seed / 0x100000000) >>> 0, spec.step >>> 0, hashString(spec.name) >>> 0];
}

/** floor(p * 2^32): a hash below it drops its element. */
export function dropThreshold(p: number): number {
  return Math.floor(p * 0x100000000);
}

/**
 * The mask of `rows` x `features` input elements (row-major, rows = B T): 0 where dropped,
 * 1 / (1 - p) where kept.
 */
export function loraDropoutMask(spec: LoraDropoutSpec, rows: number, features: number): Float32Array {
  const out = new Float32Array(rows * features);
  const threshold = dropThreshold(spec.p);
  const keep = 1 / (1 - spec.p);
  const prefix = hashChain(prefixWords(spec));
  for (let n = 0; n < rows; n++) {
    const e = spec.examples ? spec.examples[n] : Math.floor(n / spec.seqLen);
    const row = e < 0 ? 0xffffffff : spec.firstRow + e;
    const t = spec.examples && spec.positions ? spec.positions[n] : n % spec.seqLen;
    const h = fmix32((fmix32((prefix ^ row) >>> 0) ^ t) >>> 0);
    const base = n * features;
    for (let j = 0; j < features; j++) {
      const u = fmix32((h ^ (spec.firstFeature + j)) >>> 0);
      out[base + j] = u < threshold ? 0 : keep;
    }
  }
  return out;
}
