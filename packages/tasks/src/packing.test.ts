import { describe, expect, it } from 'vitest';
import { firstFit, packingStats, packRows } from './packing.js';
import { rowsOf, TaskBatchSampler, type EncodedExample } from './task-batches.js';

/** An example of ids start, start+1, ...; trained from `from` on. */
function example(start: number, n: number, from: number): EncodedExample {
  const ids = Int32Array.from({ length: n }, (_, i) => start + i);
  const trained = Uint8Array.from({ length: n }, (_, i) => (i >= from ? 1 : 0));
  return { ids, trained, trainedTargets: n - from, line: start };
}

describe('packing', () => {
  it('first fit puts each example in the first row with room, in order', () => {
    expect(firstFit([5, 3, 4, 2, 6], 8)).toEqual({ rowOf: [0, 0, 1, 1, 2], rows: 3 });
    expect(firstFit([8, 8], 8)).toEqual({ rowOf: [0, 1], rows: 2 });
  });

  it('packs whole examples with segment ids; targets stay inside their example and are those of the unpacked rows', () => {
    const T = 8;
    const ex = [example(10, 6, 2), example(20, 4, 1), example(30, 3, 1)]; // windows 5, 3, 2
    const packed = packRows(ex, T, 99);
    expect(packed.batch).toBe(2);
    expect([...packed.tokens]).toEqual([10, 11, 12, 13, 14, 20, 21, 22, 30, 31, 99, 99, 99, 99, 99, 99]);
    expect([...packed.segments!]).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect([...packed.examples!]).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, -1, -1, -1, -1, -1, -1]); // LoRA dropout's key
    expect([...packed.targets]).toEqual([-1, 12, 13, 14, 15, 21, 22, 23, 31, 32, -1, -1, -1, -1, -1, -1]);
    // the same counted (position-independent) targets as one example per row
    const one = rowsOf(ex, T, 99);
    const counted = (t: Int32Array): number[] => [...t].filter((x) => x >= 0).sort((a, b) => a - b);
    expect(counted(packed.targets)).toEqual(counted(one.targets));
  });

  it('a packed sampler draws the examples of the unpacked one, in fewer rows; stats say how full rows are', () => {
    const ex = Array.from({ length: 10 }, (_, i) => example(100 * i, 2 + (i % 4), 1));
    const o = { seqLen: 8, globalBatch: 8, seed: 5, pad: 0 };
    const plain = new TaskBatchSampler(ex, o);
    const packed = new TaskBatchSampler(ex, { ...o, pack: true });
    const slice = { rank: 1, dpSize: 2, microBatch: 4, micro: 0 };
    const a = plain.batch(3, slice);
    const b = packed.batch(3, slice);
    expect(b.batch).toBeLessThan(a.batch);
    const counted = (t: Int32Array): number[] => [...t].filter((x) => x >= 0).sort((x, y) => x - y);
    expect(counted(b.targets)).toEqual(counted(a.targets));
    const s = packed.stepStats(3, 4);
    const u = plain.stepStats(3, 4);
    expect(u.examplesPerRow).toBe(1);
    expect(s.examplesPerRow).toBeGreaterThan(1);
    expect(s.nonPaddingShare).toBeCloseTo(u.nonPaddingShare * s.examplesPerRow, 10);
    expect(packingStats(ex, 8, 10, true).rows).toBeLessThan(10);
  });
});
