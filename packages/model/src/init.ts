/**
 * GPT-2 initialisation, computed for any range of the flat vector without building the rest:
 *   wte, wpe, c_attn.weight, c_fc.weight ~ N(0, 0.02)
 *   attn.c_proj.weight, mlp.c_proj.weight ~ N(0, 0.02 / sqrt(2 * layers))  (residual projections)
 *   biases = 0, LayerNorm weight = 1, LayerNorm bias = 0.
 * Element i (row-major) of tensor `name` is std * normalAt(seed, hashString(name), i): a pure
 * function of the seed, the parameter's name and the element's place in the full tensor. So every
 * rank materialises just what it owns (a ZeRO shard, a tensor-parallel slice, a pipeline stage,
 * chunk by chunk) and 1 worker and N workers in any layout start from the identical model, with
 * the same bytes on every backend, process and machine.
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig } from './config.js';
import { validateConfig } from './config.js';
import { forEachFullRun } from './tensor-parallel/shard-runs.js';
import type { ParamEntry } from './layout.js';
import { paramLayout } from './layout.js';
import { fillNormals, hashString } from './prng.js';
import type { TensorShard } from './tensor-parallel/tp-layout.js';
import { localShape } from './tensor-parallel/tp-layout.js';

/** Standard deviation of GPT-2's weight and embedding init. */
export const INIT_STD = 0.02;

/**
 * One tensor of a local flat vector: the full layout's name, this vector's offset and size, and,
 * for a tensor-parallel shard, which part of the full tensor it holds (absent: all of it).
 */
export type LocalParamEntry = ParamEntry & { shard?: TensorShard };

type InitRule = { kind: 'constant'; value: number } | { kind: 'normal'; std: number };

/** GPT-2's rule for the tensor `name` (see the header). */
function initRule(config: GPTConfig, name: string): InitRule {
  if (name.endsWith('.bias')) return { kind: 'constant', value: 0 }; // includes LayerNorm biases
  if (/ln_[12f]\.weight$/.test(name)) return { kind: 'constant', value: 1 };
  const residualStd = INIT_STD / Math.sqrt(2 * config.layers);
  return { kind: 'normal', std: name.endsWith('c_proj.weight') ? residualStd : INIT_STD };
}

/** The whole flat vector (layout of paramLayout). */
export function initParams(config: GPTConfig, seed: number): Float32Array {
  validateConfig(config);
  return initParamsRange(config, seed, 0, paramLayout(config).totalSize);
}

/**
 * Elements [start, end) of initParams(config, seed), computing only those; written into `into`
 * (length end - start, e.g. a view of the rank's own parameter buffer) when given, else a new array.
 */
export function initParamsRange(config: GPTConfig, seed: number, start: number, end: number, into?: Float32Array): Float32Array {
  validateConfig(config);
  const layout = paramLayout(config);
  checkRange(start, end, layout.totalSize);
  return initLocalRange(config, seed, layout.entries, start, end, into);
}

/**
 * Elements [start, end) of a local flat vector laid out by `entries` (a tensor-parallel rank's
 * TPLayout entries, a pipeline stage's renumbered entries, or both): each element is the full
 * model's initial value of the element it stands for, so this equals
 * localFromGlobal(layout, paramLayout(config), initParams(config, seed)).subarray(start, end)
 * without building the full vector. The entries overlapping [start, end) must tile it. Writes
 * into `into` (length end - start) when given, else a new array; returns it.
 */
export function initLocalRange(
  config: GPTConfig,
  seed: number,
  entries: readonly LocalParamEntry[],
  start: number,
  end: number,
  into?: Float32Array,
): Float32Array {
  validateConfig(config);
  checkRange(start, end, Number.MAX_SAFE_INTEGER);
  if (!Number.isFinite(seed)) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `init seed ${seed} is not a finite number`, { hint: 'pass an integer seed, e.g. --seed 0' });
  }
  const out = into ?? new Float32Array(end - start);
  if (out.length !== end - start) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `output buffer holds ${out.length} elements, not the range's ${end - start}`, {
      hint: 'pass a Float32Array (or subarray) of length end - start',
      details: { start, end, length: out.length },
    });
  }
  const fullByName = new Map(paramLayout(config).entries.map((e) => [e.name, e]));
  let covered = 0;
  for (const e of entries) {
    const lo = Math.max(start, e.offset);
    const hi = Math.min(end, e.offset + e.size);
    if (lo >= hi) continue;
    checkEntry(e, fullByName.get(e.name));
    covered += hi - lo;
    const rule = initRule(config, e.name);
    if (rule.kind === 'constant') {
      out.fill(rule.value, lo - start, hi - start);
      continue;
    }
    const stream = hashString(e.name);
    forEachFullRun(e.shard, lo - e.offset, hi - e.offset, (fullElement, localElement, n) => {
      const at = e.offset + localElement - start;
      fillNormals(out.subarray(at, at + n), seed, stream, fullElement, rule.std);
    });
  }
  if (covered !== end - start) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `the layout's entries cover ${covered} of the ${end - start} elements in [${start}, ${end})`, {
      hint: 'pass entries that tile the range without gaps or overlaps (a layout of this model)',
      details: { start, end, covered },
    });
  }
  return out;
}

function checkRange(start: number, end: number, size: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `parameter range [${start}, ${end}) is not a range of integers within [0, ${size}]`, {
      hint: 'pass integer offsets with 0 <= start <= end <= the layout size',
      details: { start, end, size },
    });
  }
}

/** A local entry must name a tensor of this model and hold as many elements as its shard says. */
function checkEntry(e: LocalParamEntry, full: ParamEntry | undefined): void {
  if (!full) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `parameter ${e.name} is not in this model's layout`, {
      hint: 'build the local layout from the same model config',
      details: { name: e.name },
    });
  }
  const shardOk = !e.shard || e.shard.globalShape.join() === full.shape.join();
  const want = e.shard ? localShape(e.shard).reduce((a, b) => a * b, 1) : full.size;
  if (!shardOk || e.size !== want) {
    const shard = e.shard ? `, a shard of [${e.shard.globalShape.join(', ')}]` : '';
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `parameter ${e.name} (${e.size} elements${shard}) does not fit this model's [${full.shape.join(', ')}] tensor (expected ${want} elements)`, {
      hint: 'build the local layout from the same model config',
      details: { name: e.name, size: e.size, expected: want, shape: full.shape },
    });
  }
}
