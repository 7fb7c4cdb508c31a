import type { SegmentSpec } from '../interfaces.js';
import { completedUnits } from '../segment-runner.js';
import { DEFAULT_MAX_REDUCTIONS_IN_FLIGHT } from './grad-sinks.js';
import { ZeroPartition, type Unit } from './partition.js';
import { STAGES, type ZeroStage } from './stage-plan.js';
import type { ModelStateBytes } from '../trainer.js';
import type { Precision } from '../precision/vector-store.js';

/**
 * Predicts the model-state bytes a rank will hold under each ZeRO stage, before anything runs,
 * from the model's units and segment order alone. It follows the ZeRO paper's accounting
 * (Rajbhandari et al. 2020, sec. 3: fp32 Adam keeps 4 + 4 + 8 bytes per parameter; stage 1
 * partitions the 8, stage 2 also the gradients' 4, stage 3 also the parameters' 4), adapted to
 * what this engine really keeps, which the paper's formula leaves out:
 *
 *   - a compute copy of the parameters on the backend (TF.js tensors), plus transposed copies of
 *     the matrices where the kernels want W^T (wasm/cpu); under stage 3 only the units of two
 *     consecutive segments are uploaded at once, and the next segment's gathered values wait
 *     for upload (prefetch);
 *   - under stages 2-3, the full-size gradient buckets of the units being computed and reduced.
 *
 * The engine measures the same categories from its vectors (Trainer.modelStateBytes); a test
 * checks the two agree.
 */
export interface UnitCost extends Unit {
  /** Bytes of the unit's uploaded compute tensors (4 x elements, plus transposed copies). */
  computeBytes: number;
}

/** Our prediction, by the categories Trainer.modelStateBytes measures. */
export interface MemoryEstimate extends ModelStateBytes {
  stage: ZeroStage;
  precision: Precision;
  world: number;
  rank: number;
  parameters: number;
  /** The ZeRO paper's figure: (4 + 4 + 8) Psi for fp32 Adam, (2 + 2 + 12) Psi mixed, partitioned by stage. */
  zeroPaper: number;
}

export function estimateModelState(
  units: readonly UnitCost[], segments: readonly SegmentSpec[], stage: ZeroStage, world: number, rank = 0, precision: Precision = 'fp32', device: 'host' | 'tf' = 'host',
): MemoryEstimate {
  const total = units.length ? units[units.length - 1].end : 0;
  const shard = new ZeroPartition(units, world, rank).shardSize;
  const size = (u: number) => units[u].end - units[u].start;
  const mixed = precision !== 'fp32';
  // Bytes per gradient value held in the run's precision: 16-bit codes on the host; TF.js has
  // no 16-bit dtype, so a device holds them as fp32 (rounded).
  const g = mixed && device === 'host' ? 2 : 4;
  const plan = STAGES[stage];
  const optimizerElements = plan.optimizer === 'replicated' ? total : shard;
  // The fp32 master of the optimizer ranges is the working copy under fp32 (params), the master under 16 bits.
  const params = mixed ? 0 : 4 * optimizerElements;
  const master = mixed ? 4 * optimizerElements : 0;
  const paramsCompute = plan.params === 'gathered' ? gatheredPeak(units, segments, size) : units.reduce((s, u) => s + u.computeBytes, 0);
  // Stages 0-1 hold the full gradient: fp32 in one buffer per unit for the step, 16 bits as
  // per-unit sums plus the fp32 buffers a segment's backward fills before they are added.
  // Stages 2-3 hold their pieces' sums plus the full buffers of the units being computed and reduced.
  const grads = plan.grads === 'full'
    ? (mixed ? g * total + segmentBucketPeak(segments, size) : 4 * total)
    : g * shard + bucketPeak(segments, size);
  const optimizer = 8 * optimizerElements;
  const N = world;
  const psi = total;
  const b = mixed ? 2 : 4;
  const K = mixed ? 12 : 8;
  const zeroPaper = [(2 * b + K) * psi, 2 * b * psi + (K * psi) / N, b * psi + ((b + K) * psi) / N, ((2 * b + K) * psi) / N][stage];
  return {
    stage, precision, world, rank, parameters: total, params, master, paramsCompute, grads, optimizer,
    total: params + master + paramsCompute + grads + optimizer, zeroPaper,
  };
}

/** The fp32 gradient buckets of stages 0-1 (mixed): each added to the 16-bit store when complete. */
function segmentBucketPeak(segments: readonly SegmentSpec[], size: (u: number) => number): number {
  return openBucketPeak(segments, size, 0);
}

/**
 * Stage 3's compute copy: walk the segments as the engine does (forward, then backward in
 * reverse). Acquiring a segment uploads its units (reusing those the previous segment kept),
 * then frees the rest of the previous segment's; the next segment's units are gathered at once
 * and wait, as fp32 values, for their upload. Peak uploaded bytes plus peak waiting bytes.
 */
function gatheredPeak(units: readonly UnitCost[], segments: readonly SegmentSpec[], size: (u: number) => number): number {
  const order = [
    ...segments.map((s, i) => ({ units: s.forwardUnits, next: segments[i + 1]?.forwardUnits ?? [] })),
    ...segments.map((_, i) => segments.length - 1 - i).map((i) => ({ units: segments[i].backwardUnits, next: segments[i - 1]?.backwardUnits ?? [] })),
  ];
  let kept: readonly number[] = [];
  let peakUploaded = 0;
  let peakWaiting = 0;
  for (const step of order) {
    const uploaded = [...new Set([...kept, ...step.units])].reduce((s, u) => s + units[u].computeBytes, 0);
    peakUploaded = Math.max(peakUploaded, uploaded);
    const waiting = step.next.filter((u) => !step.units.includes(u)).reduce((s, u) => s + 4 * size(u), 0);
    peakWaiting = Math.max(peakWaiting, waiting);
    kept = step.units;
  }
  return peakUploaded + peakWaiting;
}

/**
 * Stages 2-3's gradient buckets: backward fills the buckets of a segment's gradient units while
 * up to DEFAULT_MAX_REDUCTIONS_IN_FLIGHT earlier buckets are still being reduced.
 */
function bucketPeak(segments: readonly SegmentSpec[], size: (u: number) => number): number {
  return openBucketPeak(segments, size, DEFAULT_MAX_REDUCTIONS_IN_FLIGHT);
}

/**
 * Walks backward as SegmentRunner does: a segment opens the buckets of its gradient units (or
 * adds to one still open); a bucket closes when its gradient is complete (completedUnits) and is
 * handed to its reduction, of which the last `inFlight` may still hold their buckets while the
 * next segment's open. Buckets come from a BucketPool, which keeps every bucket it made for
 * reuse: it holds, for each bucket length, the most buckets of that length in use at once.
 */
function openBucketPeak(segments: readonly SegmentSpec[], size: (u: number) => number, inFlight: number): number {
  const completed = completedUnits(segments);
  const open = new Set<number>();
  const handed: number[] = [];
  const most = new Map<number, number>(); // bucket length -> most in use at once
  for (let s = segments.length - 1; s >= 0; s--) {
    for (const u of segments[s].gradUnits) open.add(u);
    const inUse = new Map<number, number>();
    for (const u of [...open, ...(inFlight > 0 ? handed.slice(-inFlight) : [])]) inUse.set(size(u), (inUse.get(size(u)) ?? 0) + 1);
    for (const [length, n] of inUse) most.set(length, Math.max(most.get(length) ?? 0, n));
    for (const u of completed[s]) {
      open.delete(u);
      handed.push(u);
    }
  }
  return [...most].reduce((sum, [length, n]) => sum + 4 * length * n, 0);
}
