import { forEachRun, regionSize, type Region } from './region.js';

/**
 * A region (region.ts) of a tensor in the trainer's orientation, read from a file that stores the
 * tensor either the same way or transposed: Hugging Face's nn.Linear keeps W as [out, in], the
 * trainer's linears are [in, out] (y = x W). The plan names the element runs of the stored tensor
 * to read, so a rank reads only the bytes of its shard, and how to arrange them.
 *
 * Same orientation: the region's row-major runs (forEachRun), adjacent ones merged.
 * Transposed, ours [R, K] = stored [K, R]: our rows [r0, r1) x column ranges are the stored rows
 * of those column ranges x stored columns [r0, r1). Per stored row (one of our columns) the run
 * [r0, r1) is read; runs of consecutive stored rows merge when [r0, r1) spans all R columns, so a
 * column-parallel shard of q_proj is one read and a row-parallel shard of o_proj one read per
 * stored row. The values arrive column by column of ours and are transposed in memory:
 *
 *   ours [4, 3], region rows [1, 3) cols [[0, 2]]: stored rows 0, 1, columns 1..2
 *     runs (0*4 + 1, 2), (1*4 + 1, 2)  ->  block [c0: r1 r2 | c1: r1 r2]  ->  r1c0 r1c1 r2c0 r2c1
 *
 * A range [start, end) of the region's row-major elements (a ZeRO piece) reads the rows it
 * touches: at most the rest of its first and last row beyond it, never another row.
 */
export interface RegionRead {
  /** Element runs [offset, n) of the stored tensor (row-major), read and concatenated in order. */
  runs: [offset: number, n: number][];
  /** The region's elements [start, end) from the runs' values. */
  assemble(values: Float32Array): Float32Array;
}

/** How to read elements [start, end) of `region` of a tensor of our `shape`, stored `transposed` or not. */
export function planRegionRead(shape: readonly number[], region: Region | undefined, start: number, end: number, transposed: boolean): RegionRead {
  if (!transposed) return planSameOrientation(shape, region, start, end);
  if (shape.length !== 2) throw new Error(`internal: a transposed tensor must be 2-D, not ${JSON.stringify(shape)}`);
  return planTransposed(shape as [number, number], region, start, end);
}

function planSameOrientation(shape: readonly number[], region: Region | undefined, start: number, end: number): RegionRead {
  const runs: [number, number][] = [];
  forEachRun(shape, region, start, end, (tensorOffset, _regionOffset, n) => {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === tensorOffset) last[1] += n;
    else runs.push([tensorOffset, n]);
  });
  return { runs, assemble: (values) => values };
}

function planTransposed([R, K]: [number, number], region: Region | undefined, start: number, end: number): RegionRead {
  const [g0] = region?.rows ?? [0, R];
  const segments = region?.cols ?? [[0, K]];
  const width = segments.reduce((s, [a, b]) => s + b - a, 0);
  if (end <= start || width === 0) return { runs: [], assemble: () => new Float32Array(0) };
  if (end > regionSize([R, K], region)) throw new RangeError(`elements [${start}, ${end}) outside a region of ${regionSize([R, K], region)}`);
  // Region rows [ra, rb) hold the elements [start, end); h of them are read per column.
  const ra = Math.floor(start / width);
  const rb = Math.floor((end - 1) / width) + 1;
  const h = rb - ra;
  const runs: [number, number][] = [];
  for (const [a, b] of segments) {
    for (let c = a; c < b; c++) {
      const offset = c * R + g0 + ra; // stored row c, stored column g0 + ra
      const last = runs[runs.length - 1];
      if (last && last[0] + last[1] === offset) last[1] += h;
      else runs.push([offset, h]);
    }
  }
  return {
    runs,
    assemble: (block) => {
      // block[k * h + i] = region element (row ra + i, column k): transpose into [start, end).
      const out = new Float32Array(end - start);
      for (let i = 0; i < h; i++) {
        const rowStart = (ra + i) * width;
        const k0 = Math.max(0, start - rowStart);
        const k1 = Math.min(width, end - rowStart);
        for (let k = k0; k < k1; k++) out[rowStart + k - start] = block[k * h + i];
      }
      return out;
    },
  };
}

/** A row-major [rows, cols] matrix transposed into a new row-major [cols, rows] one. */
export function transposeMatrix(src: Float32Array, rows: number, cols: number): Float32Array {
  if (src.length !== rows * cols) throw new RangeError(`transposeMatrix: ${src.length} values for [${rows}, ${cols}]`);
  const dst = new Float32Array(src.length);
  const TILE = 64; // cache-sized tiles: both matrices are walked a tile's rows at a time
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) dst[j * rows + i] = src[i * cols + j];
    }
  }
  return dst;
}
