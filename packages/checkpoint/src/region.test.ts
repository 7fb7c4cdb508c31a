import { describe, expect, it } from 'vitest';
import { forEachRun, regionProblem, regionSize, type Region } from './region.js';

function runs(shape: number[], region: Region | undefined, start: number, end: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  forEachRun(shape, region, start, end, (g, r, n) => out.push([g, r, n]));
  return out;
}

describe('tensor regions', () => {
  it('maps a region\'s row-major elements to the tensor\'s, in contiguous runs', () => {
    // [4, 8], rows 1-2, columns 1-3: elements (1,1) (1,2) (1,3) (2,1) (2,2) (2,3) = 9 10 11 17 18 19.
    const r: Region = { rows: [1, 3], cols: [[1, 4]] };
    expect(regionSize([4, 8], r)).toBe(6);
    expect(runs([4, 8], r, 0, 6)).toEqual([[9, 0, 3], [17, 3, 3]]);
    expect(runs([4, 8], r, 2, 5)).toEqual([[11, 2, 1], [17, 3, 2]]);
    // Two column groups (q and k of a column-parallel c_attn): columns 0-1 and 4-5 of every row.
    const qk: Region = { cols: [[0, 2], [4, 6]] };
    expect(regionSize([2, 8], qk)).toBe(8);
    expect(runs([2, 8], qk, 1, 7)).toEqual([[1, 1, 1], [4, 2, 2], [8, 4, 2], [12, 6, 1]]);
    // 1-D: element ranges; no region: the whole tensor.
    expect(runs([6], { cols: [[2, 5]] }, 0, 3)).toEqual([[2, 0, 3]]);
    expect(runs([6], { rows: [3, 6] }, 1, 3)).toEqual([[4, 1, 2]]);
    expect(runs([3, 5], undefined, 4, 9)).toEqual([[4, 4, 5]]);
    expect(runs([3, 5], { rows: [1, 2] }, 0, 0)).toEqual([]);
  });

  it('refuses regions outside the tensor, decreasing column ranges, and regions of 3-D tensors', () => {
    expect(regionProblem([4, 8], { rows: [0, 5] })).toMatch(/rows/);
    expect(regionProblem([4, 8], { cols: [[4, 6], [0, 2]] })).toMatch(/increasing/);
    expect(regionProblem([2, 2, 2], { rows: [0, 1] })).toMatch(/1-D or 2-D/);
    expect(regionProblem([6], { rows: [0, 1], cols: [[0, 1]] })).toMatch(/not both/);
    expect(regionProblem([4, 8], { rows: [1, 3], cols: [[1, 4]] })).toBeUndefined();
  });
});
