/**
 * The part of a tensor a shard holds, and how its elements map to the tensor's own.
 *
 * A region selects `rows` [r0, r1) (all when absent) and `cols`: column ranges, concatenated in
 * order (all when absent), of a 2-D tensor; for a 1-D tensor `rows` or `cols` are element ranges.
 * That is a Megatron tensor-parallel shard: column-parallel weights keep column ranges (one per q,
 * k, v for attention), row-parallel ones row ranges, the vocab-parallel embedding row ranges.
 * The region's elements, flattened row-major, form the shard's own flat vector; a piece of a
 * checkpoint is a range [start, end) of that vector (a ZeRO piece of a tensor-parallel shard).
 * Without rows and cols the region is the whole tensor.
 *
 *   tensor [4, 6], region cols [[0, 2], [4, 5]]:   region row-major = t[0,0] t[0,1] t[0,4] t[1,0] ...
 */
export interface Region {
  rows?: [number, number];
  cols?: [number, number][];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Why `region` is not a valid region of a tensor of `shape`, or undefined. */
export function regionProblem(shape: readonly number[], region: Region | undefined): string | undefined {
  if (!region || (!region.rows && !region.cols)) return undefined;
  if (shape.length < 1 || shape.length > 2) return `a region needs a 1-D or 2-D tensor, not shape ${JSON.stringify(shape)}`;
  if (shape.length === 1 && region.rows && region.cols) return 'a 1-D region has rows or cols, not both';
  const inRange = ([a, b]: [number, number], n: number) => Number.isInteger(a) && Number.isInteger(b) && a >= 0 && a <= b && b <= n;
  if (region.rows && !inRange(region.rows, shape[0])) return `rows ${JSON.stringify(region.rows)} outside ${shape[0]}`;
  if (region.cols) {
    const n = shape.length === 1 ? shape[0] : shape[1];
    let last = 0;
    for (const c of region.cols) {
      if (!inRange(c, n) || c[0] < last) return `cols ${JSON.stringify(region.cols)} are not increasing ranges inside ${n}`;
      last = c[1];
    }
  }
  return undefined;
}

/** Number of elements in the region. */
export function regionSize(shape: readonly number[], region: Region | undefined): number {
  if (!region || (!region.rows && !region.cols)) return numel(shape);
  const width = (cols: [number, number][]) => cols.reduce((s, [a, b]) => s + b - a, 0);
  if (shape.length === 1) return region.cols ? width(region.cols) : region.rows![1] - region.rows![0];
  const [r0, r1] = region.rows ?? [0, shape[0]];
  return (r1 - r0) * (region.cols ? width(region.cols) : shape[1]);
}

/**
 * Calls fn(tensorOffset, regionOffset, n) for the contiguous runs of elements [start, end) of
 * the region's row-major flattening, in order: element regionOffset + i of the region is element
 * tensorOffset + i of the tensor (row-major), for i < n.
 */
export function forEachRun(shape: readonly number[], region: Region | undefined, start: number, end: number, fn: (tensorOffset: number, regionOffset: number, n: number) => void): void {
  if (end <= start) return;
  if (!region || (!region.rows && !region.cols)) return fn(start, start, end - start);
  // Segments of one row of the region: (offset in the tensor row, length).
  const is1d = shape.length === 1;
  const rowWidth = is1d ? 0 : shape[1];
  const segs: [number, number][] = (region.cols ?? [[0, is1d ? shape[0] : shape[1]]]).map(([a, b]) => [a, b - a]);
  const [r0, r1] = is1d ? (region.rows ?? [0, 1]) : (region.rows ?? [0, shape[0]]);
  if (is1d && region.rows) return fn(r0 + start, start, end - start);
  const perRow = segs.reduce((s, [, n]) => s + n, 0);
  if (perRow === 0) return;
  let row = Math.floor(start / perRow);
  let at = row * perRow;
  for (; r0 + row < r1 && at < end; row++) {
    for (const [c0, n] of segs) {
      const s = Math.max(start, at);
      const e = Math.min(end, at + n);
      if (e > s) fn((r0 + row) * rowWidth + c0 + (s - at), s, e - s);
      at += n;
    }
  }
}
