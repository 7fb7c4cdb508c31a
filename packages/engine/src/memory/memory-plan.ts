import {
  balanceBlocks, GPTSegments, LoraSegments, kernelConstantBytes, type LoraConfig, recomputeMemory, segmentMemory,
  type ActivationShape, type GPTConfig, type KernelSet, type SegmentMemory, type SegmentMemoryKind, type TraceBackend,
} from '@trainer/model';
import { meshShape } from '../device-mesh.js';
import type { Precision } from '../precision/vector-store.js';
import { estimateModelState, type MemoryEstimate } from '../zero/memory-estimate.js';
import type { ZeroStage } from '../zero/stage-plan.js';
import { schedule1F1B } from '../schedules/schedule-1f1b.js';
import { ROUNDING_TEMPORARIES } from '../device/device-rounding.js';
import { WIRE_CODE_CHUNK, WIRE_CODE_TEMPORARIES } from '../device/wire-codes.js';
import { COLLECTIVES_IN_FLIGHT } from '../zero/zero-strategy.js';
import { completedUnits } from '../segment-runner.js';

/**
 * The memory planner: a rank's peak memory over a training step, predicted before anything runs
 * from the model's shape and the run's layout, by walking the step as the engine runs it.
 *
 *   model state   exact (zero/memory-estimate.ts): fp32 masters, AdamW's m and v, gradient
 *                 buffers and sums, the compute copy of the parameters
 *   activations   per segment and micro-batch (model/src/memory/activation-memory.ts: the
 *                 layers' saved tensors and working sets replayed on a ledger of exact sizes),
 *                 for as many micro-batches as the schedule keeps in flight (1 in sequence; a
 *                 1F1B pipeline stage s of P keeps up to P - s), blocks only as their input under
 *                 activation checkpointing
 *   transients    what the step allocates beside those for a moment: each segment's working set,
 *                 a gradient unit flattened and reduced, AdamW's temporaries on a piece, a unit's
 *                 new compute tensors built while the old ones still exist
 *
 * Where it lives: with the tf kernel set all of it is backend memory (a GPU's); with the host
 * kernel set the model state is host arrays and the backend holds the compute copy and the
 * activations. `device` is the backend's peak (what memory-meter.ts measures; a test checks the
 * two within 10% on small runs of every layout), `host` the host arrays, `runtime` the process
 * itself (Node, TF.js, the collectives' buffers: measured once, a constant per backend).
 */
export interface MemoryPlanInput {
  config: GPTConfig;
  world: number;
  tp: number;
  pp: number;
  zero: ZeroStage;
  precision: Precision;
  kernels: KernelSet;
  activationCheckpointing: boolean;
  /** Sequences per micro-batch (B). */
  microBatch: number;
  /** Micro-batches per step on each data-parallel replica (a pipeline keeps up to P in flight). */
  microBatches: number;
  seqLen: number;
  /** Blocks per pipeline stage (default: balanced by compute, as the launcher does). */
  ppSplit?: number[];
  /** Host kernels on wasm with the SIMD module. */
  simd?: boolean;
  /**
   * LoRA: the model state is the adapters' (masters, gradients, AdamW moments, partitioned by
   * ZeRO), and the frozen base adds its compute copy, resident on the backend on every rank of its
   * tensor-parallel shard and stage (never partitioned). The adapters' activations (X A, [N, r] per
   * adapted linear) are left out: r is small against the widths.
   */
  lora?: LoraConfig;
  /** The TF.js backend (it decides whether a cast copies): default 'tensorflow' for the tf kernel set, 'wasm' for the host one. */
  backend?: TraceBackend;
}

export interface RankPlan {
  /** Pipeline stage and tensor-parallel rank (the data-parallel ranks of one (stage, tp) are alike up to a piece's rounding). */
  stage: number;
  tpRank: number;
  /** The model state's categories, each at its most over the step (zero/memory-estimate.ts). */
  state: MemoryEstimate;
  /** Model state on the backend at the device peak: masters, moments, compute copy, constants, gradients alive then. */
  stateAtPeak: number;
  /** Activations alive at the device peak (saved for backward, and inputs kept for recompute). */
  activations: number;
  /** The rest of the device peak: the working set of what ran at that moment (stateAtPeak + activations + transient = device). */
  transient: number;
  /** What reached the peak, e.g. 'forward of head, micro-batch 2'. */
  peakAt: string;
  /** Backend bytes at the peak. */
  device: number;
  /** Host arrays holding model state (host kernel set), at their most. */
  host: number;
}

export interface MemoryPlan {
  input: MemoryPlanInput;
  dp: number;
  ranks: RankPlan[];
  /** The rank with the largest device + host bytes. */
  worst: RankPlan;
}

/** Bytes a worker process holds before any model (Node, TF.js, comm arenas), measured on this machine's workers. */
export const RUNTIME_BYTES: Record<'cpu' | 'gpu', number> = {
  cpu: 128 * 2 ** 20,
  /** The CUDA context, cuBLAS/cuDNN workspaces and TF's allocator reserve on the GPU: NVIDIA's usual ~1 GiB (not measured here: no GPU). */
  gpu: 2 ** 30,
};

/** The peak of every (stage, tensor-parallel rank) of a layout. */
export function planMemory(input: MemoryPlanInput): MemoryPlan {
  const { dp } = meshShape(input.world, input.tp, input.pp);
  const split = input.pp > 1 ? (input.ppSplit ?? balanceBlocks(input.config, input.pp)) : undefined;
  const ranks: RankPlan[] = [];
  for (let stage = 0; stage < input.pp; stage++) {
    // Tensor-parallel rank 0 holds the most vocabulary rows (shards differ by at most one).
    ranks.push(planRank(input, dp, stage, 0, split));
  }
  const worst = ranks.reduce((a, b) => (b.device + b.host > a.device + a.host ? b : a));
  return { input, dp, ranks, worst };
}

/** The largest piece a data-parallel rank owns of a unit of n elements (comm's shardRange: rank 0). */
function pieceOf(n: number, world: number): number {
  return Math.ceil(n / world);
}

function planRank(input: MemoryPlanInput, dp: number, stage: number, tpRank: number, split: number[] | undefined): RankPlan {
  const { config, kernels, precision, zero } = input;
  const tpGroup = input.tp > 1 ? { size: input.tp, rank: tpRank, allReduce: () => Promise.reject(new Error('planning only')) } : undefined;
  const segmentsOptions = { kernels, tensorParallel: tpGroup, ...(split ? { pipeline: { stages: input.pp, stage, blocks: split } } : {}) };
  const lora = input.lora ? new LoraSegments(config, input.lora, segmentsOptions) : null;
  const model = lora ?? new GPTSegments(config, segmentsOptions);
  const units = model.unitCosts();
  const frozenBase = lora ? lora.base.unitCosts().reduce((b, u) => b + u.computeBytes, 0) : 0;
  lora?.dispose();
  const state = estimateModelState(units, model.segments, zero, dp, 0, precision, kernels === 'tf' ? 'tf' : 'host');
  const shape: ActivationShape = { batch: input.microBatch, seqLen: input.seqLen, kernels, tp: input.tp, tpRank, simd: input.simd, ...(input.backend ? { backend: input.backend } : {}) };
  const kinds = model.segments.map((s): SegmentMemoryKind => (s.name === 'embedding' ? 'embedding' : s.name === 'head' ? 'head' : 'block'));
  const mem = new Map<string, SegmentMemory>();
  const segMem = (kind: SegmentMemoryKind) => {
    let m = mem.get(kind);
    if (!m) mem.set(kind, (m = segmentMemory(config, kind, shape)));
    return m;
  };
  const recompute = input.activationCheckpointing ? recomputeMemory(config, shape) : null;
  const onDevice = kernels === 'tf';
  const unitSize = units.map((u) => u.end - u.start);
  const completed = completedUnits(model.segments);
  /** 16 bits on the device: a vector of n crossing as its wire codes, a chunk at a time (its temporaries and packed codes). */
  const wireCodes = (n: number) => (onDevice && precision !== 'fp32' ? (4 * WIRE_CODE_TEMPORARIES + 2) * Math.min(n, WIRE_CODE_CHUNK) : 0);

  // Always on the backend: the compute copy (stages 0-2) and the kernels' constants; with the tf
  // kernel set also the masters and AdamW's moments. Under stage 3 a segment's units exist only
  // while it runs (gathered when it starts: its predecessor's and its own units, and the
  // gathered values being split, are alive for that moment).
  const gathered = zero === 3;
  const persistent = frozenBase + (gathered ? 0 : state.paramsCompute) + kernelConstantBytes(config, shape) + (onDevice ? state.params + state.master + state.optimizer : 0);
  const unitsOf = (k: number, dir: 'forward' | 'backward') => new Set(dir === 'forward' ? model.segments[k].forwardUnits : [...model.segments[k].forwardUnits, ...model.segments[k].backwardUnits]);
  const computeOf = (set: Set<number>) => [...set].reduce((b, u) => b + units[u].computeBytes, 0);
  let previous = new Set<number>();
  /** Stage 3: the units segment k reads, gathered now; returns their compute bytes (0 otherwise). */
  const acquire = (k: number, dir: 'forward' | 'backward', m: number): number => {
    if (!gathered) return 0;
    const now = unitsOf(k, dir);
    const fresh = [...now].filter((u) => !previous.has(u));
    const flat = fresh.length ? Math.max(...fresh.map((u) => 4 * unitSize[u])) : 0;
    consider(computeOf(new Set([...previous, ...now])) + flat, `gather for ${dir} of ${model.segments[k].name}, micro-batch ${m}`);
    // 16 bits: the gathers issued next (prefetch) encode this rank's piece of each unit as codes
    // once these units are built and the previous ones dropped.
    const codes = fresh.length ? Math.max(...fresh.map((u) => wireCodes(pieceOf(unitSize[u], dp)))) : 0;
    if (codes) consider(computeOf(now) + codes, `encoding this rank's pieces for the gathers after ${model.segments[k].name}, micro-batch ${m}`);
    previous = now;
    return computeOf(now);
  };
  const host = onDevice ? 0 : state.params + state.master + state.optimizer + state.grads;

  // The walk keeps three amounts on the backend besides `persistent`: gradient buffers and sums
  // (tf kernel set), activations (saved for backward, inputs kept), and at each moment the
  // working set of what runs (`extra` in consider).
  let grads = 0;
  let acts = 0;
  let best = { bytes: persistent, state: persistent, activations: 0, at: 'the model state' };
  const consider = (extra: number, at: string) => {
    const bytes = persistent + grads + acts + extra;
    if (bytes > best.bytes) best = { bytes, state: persistent + grads, activations: acts, at };
  };
  const sharded = zero >= 2;
  const gradsHeld = new Set<number>(); // units whose piece sum exists (stages 2-3)
  let reducing = 0; // stages 2-3: the flattened unit gradient whose reduce-scatter is in flight

  /** A micro-batch's forward: what each segment keeps joins the activations (its input dropped, unless kept for recompute). */
  const forward = (m: number) => {
    previous = new Set(); // the last backward's finish() dropped what it kept
    let input = 0;
    for (const [k, kind] of kinds.entries()) {
      const seg = segMem(kind);
      const checkpointed = recompute !== null && kind === 'block';
      const compute = acquire(k, 'forward', m);
      consider(compute + (checkpointed ? recompute.forwardPeak : seg.forwardPeak), `forward of ${model.segments[k].name}${checkpointed ? ' (activation checkpointing)' : ''}, micro-batch ${m}`);
      acts += checkpointed ? seg.output : seg.saved + seg.savedInput + seg.output - input;
      input = seg.output;
    }
  };

  /**
   * A micro-batch's backward: each segment's working set, then its net (dx, and with the tf kernel
   * set its gradient tensors, minus what it saved); the gradient becomes the unit's buffer (the
   * first pass) or is added into it, or (stages 2-3) is reduced at once, this rank's piece kept.
   */
  const backward = (m: number, firstPass: boolean) => {
    for (let k = kinds.length - 1; k >= 0; k--) {
      const seg = segMem(kinds[k]);
      const checkpointed = recompute !== null && kinds[k] === 'block';
      const compute = acquire(k, 'backward', m);
      consider(compute + (checkpointed ? recompute.backwardPeak : seg.backwardPeak), `backward of ${model.segments[k].name}, micro-batch ${m}`);
      // seg.gradients: the tf kernels' gradient tensors, inside backwardNet (0 for host kernels).
      acts += (checkpointed ? recompute.backwardNet : seg.backwardNet) - seg.gradients;
      if (kinds[k] !== 'head') acts -= seg.output; // the dy the runner disposes
      if (firstPass || sharded) grads += seg.gradients;
      if (onDevice && precision !== 'fp32') {
        // A completed unit's gradient is rounded to 16 bits: a few unit-sized temporaries and a byte mask.
        for (const u of completed[k]) consider((4 * ROUNDING_TEMPORARIES + (precision === 'fp16' ? 2 : 1)) * unitSize[u], `rounding the gradient of ${units[u].name} to ${precision}, micro-batch ${m}`);
      }
      if (!onDevice || !sharded) continue;
      for (const u of model.segments[k].gradUnits) {
        // The buffer is flattened and reduce-scattered while the next segment computes (one
        // reduction in flight): it goes when the next one starts; this rank's piece sum stays.
        grads += (gradsHeld.has(u) ? 0 : 4 * pieceOf(unitSize[u], dp)) - reducing;
        reducing = 4 * unitSize[u];
        gradsHeld.add(u);
        // 16 bits: the other ranks' pieces go down as codes, each rounded first (an fp32 sum): a rounded chunk beside the codes' temporaries.
        const others = unitSize[u] - pieceOf(unitSize[u], dp);
        if (precision !== 'fp32') consider(wireCodes(others) + 4 * Math.min(others, WIRE_CODE_CHUNK), `the gradient of ${units[u].name} to its wire codes, micro-batch ${m}`);
      }
    }
  };

  // Phase 1: the micro-batches, in the schedule's order.
  const M = input.microBatches;
  const flushReductions = () => {
    grads -= reducing;
    reducing = 0;
  };
  if (input.pp > 1) {
    let firstPass = true;
    for (const a of schedule1F1B(input.pp, stage, M)) {
      if (a.kind === 'forward') forward(a.micro);
      else {
        backward(a.micro, firstPass);
        firstPass = false;
      }
    }
  } else {
    for (let m = 0; m < M; m++) {
      forward(m);
      backward(m, m === 0);
      flushReductions(); // each micro-batch ends by flushing its reductions (SegmentRunner.forwardBackward)
    }
  }
  flushReductions();

  // Phases 2-5 on the device, one unit at a time: reduce (a unit flattened beside its buffer,
  // a reduced copy uploaded beside the old; 16 bits: rounded), AdamW's temporaries on the largest
  // piece, redistribute (the master rounded, or the unit all-gathered, then split into new compute
  // tensors beside the old ones).
  if (onDevice) {
    const largest = Math.max(...unitSize);
    const range = zero === 0 ? largest : pieceOf(largest, dp);
    const maxCompute = Math.max(...units.map((u) => u.computeBytes));
    const rounding = precision === 'fp32' ? 0 : (4 * ROUNDING_TEMPORARIES + (precision === 'fp16' ? 2 : 1)) * largest;
    // COLLECTIVES_IN_FLIGHT units reduce (and are gathered) at once, each a fresh unit-sized copy;
    // with 16-bit codes a unit is freed once encoded, and the codes' temporaries are the most.
    const codes = wireCodes(largest) > 0;
    const reduce = zero > 1 ? 0 : codes ? wireCodes(largest) : COLLECTIVES_IN_FLIGHT * 4 * largest + (zero === 0 ? rounding : 0);
    const update = ADAMW_TEMPORARIES * 4 * range;
    const redistribute = zero === 3 ? 0
      : zero === 0 ? (precision === 'fp32' ? maxCompute : Math.max(rounding, 4 * largest + maxCompute))
        : COLLECTIVES_IN_FLIGHT * 4 * largest + maxCompute + wireCodes(largest);
    grads = zero <= 1 ? 4 * units.reduce((s, u) => s + u.end - u.start, 0) : 4 * units.reduce((s, u) => s + pieceOf(u.end - u.start, dp), 0);
    acts = 0;
    consider(Math.max(reduce, update, redistribute), 'the optimizer step');
  }
  return {
    stage, tpRank, state, stateAtPeak: best.state, activations: best.activations, transient: best.bytes - best.state - best.activations, peakAt: best.at,
    device: best.bytes, host,
  };
}

/** Piece-sized temporaries TfDevice.adamw has alive at once, at most: three, plus the scaled gradient when clipping or a loss scale applies. */
export const ADAMW_TEMPORARIES = 4;

/** Layouts (tp, pp, zero) a world of `world` workers can form for this model, smallest model parallelism first. */
export function candidateLayouts(config: GPTConfig, world: number): { tp: number; pp: number; zero: ZeroStage }[] {
  const out: { tp: number; pp: number; zero: ZeroStage }[] = [];
  for (let tp = 1; tp <= Math.min(world, 8); tp *= 2) {
    if (config.heads % tp !== 0 || (config.kvHeads ?? config.heads) % tp !== 0 || (config.family === 'llama' ? (config.ffnHidden ?? 4 * config.dModel) : 4 * config.dModel) % tp !== 0) continue;
    for (let pp = 1; pp <= Math.min(world / tp, config.layers); pp *= 2) {
      if (world % (tp * pp) !== 0) continue;
      for (const zero of [0, 1, 2, 3] as ZeroStage[]) out.push({ tp, pp, zero });
    }
  }
  return out;
}

