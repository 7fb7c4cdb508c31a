/**
 * Which elements of a full parameter tensor a range of a local tensor stands for.
 *
 * A local tensor is either the whole tensor (a pipeline stage or ZeRO shard only renumbers
 * offsets) or a tensor-parallel shard: rows [r0, r1) of the full row-major tensor and, within
 * each row, the column ranges of `cols` concatenated in order (tp-layout.ts's TensorShard; a 1-D
 * tensor's `rows` or `cols` are element ranges). Local element p of a 2-D shard with local width
 * w = sum of the column widths is full element (r0 + floor(p / w)) * width + (column p % w maps to).
 */
import type { TensorShard } from './tp-layout.js';

/** fn(fullElement, localElement, n): local elements [localElement, +n) are full elements [fullElement, +n). */
export type ElementRunFn = (fullElement: number, localElement: number, n: number) => void;

/**
 * Calls fn for the contiguous runs of full-tensor elements that local elements [from, to) stand
 * for, in local order, in O(runs in the range): never walks the rows before `from`.
 */
export function forEachFullRun(shard: TensorShard | undefined, from: number, to: number, fn: ElementRunFn): void {
  if (from >= to) return;
  if (!shard || (!shard.rows && !shard.cols)) return fn(from, from, to - from);
  if (shard.globalShape.length === 1) {
    // 1-D: `cols` (if present) are element ranges in order, else `rows` is one element range.
    const ranges = shard.cols ?? [shard.rows ?? [0, shard.globalShape[0]]];
    clipRuns(ranges, 0, 0, from, to, fn);
    return;
  }
  const width = shard.globalShape[1];
  const [r0] = shard.rows ?? [0, shard.globalShape[0]];
  if (!shard.cols) return fn(r0 * width + from, from, to - from); // whole rows: one run
  const cols = shard.cols;
  const localWidth = cols.reduce((a, [c0, c1]) => a + c1 - c0, 0);
  for (let row = Math.floor(from / localWidth); row * localWidth < to; row++) {
    clipRuns(cols, (r0 + row) * width, row * localWidth, from, to, fn);
  }
}

/**
 * Full elements base + [g0, g1) of each range, laid out one after another from local element `at`:
 * emits the parts that fall in local [from, to).
 */
function clipRuns(ranges: readonly [number, number][], base: number, at: number, from: number, to: number, fn: ElementRunFn): void {
  for (const [g0, g1] of ranges) {
    const lo = Math.max(at, from);
    const hi = Math.min(at + g1 - g0, to);
    if (lo < hi) fn(base + g0 + (lo - at), lo, hi - lo);
    at += g1 - g0;
    if (at >= to) return;
  }
}
