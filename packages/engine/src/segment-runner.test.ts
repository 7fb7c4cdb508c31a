import { describe, expect, it } from 'vitest';
import { completedUnits } from './segment-runner.js';

describe('completedUnits', () => {
  it('hands a unit over after the last segment backward visits that writes it (the tied embedding), every other after its own', () => {
    // embedding (wte 0, wpe 1), a block (2), the head reusing wte with its own LayerNorm (3)
    expect(completedUnits([{ gradUnits: [0, 1] }, { gradUnits: [2] }, { gradUnits: [3, 0] }])).toEqual([[0, 1], [2], [3]]);
  });

  it('hands every unit over exactly once', () => {
    const segments = [{ gradUnits: [4] }, { gradUnits: [0, 4] }, { gradUnits: [1, 2] }, { gradUnits: [2, 3, 0] }];
    expect(completedUnits(segments).flat().sort()).toEqual([0, 1, 2, 3, 4]);
  });
});
