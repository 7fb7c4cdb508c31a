import { describe, expect, it } from 'vitest';
import { buildMesh, replicaGroupRanks, coordinatesOf, meshGroupRanks, meshShape, rankOf } from './device-mesh.js';

describe('device mesh', () => {
  it('numbers ranks tensor-parallel fastest, then data-parallel, then pipeline', () => {
    const s = meshShape(8, 2, 2); // dp 2
    expect(s).toEqual({ dp: 2, tp: 2, pp: 2 });
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((r) => coordinatesOf(r, s))).toEqual([
      { tp: 0, dp: 0, pp: 0 }, { tp: 1, dp: 0, pp: 0 }, { tp: 0, dp: 1, pp: 0 }, { tp: 1, dp: 1, pp: 0 },
      { tp: 0, dp: 0, pp: 1 }, { tp: 1, dp: 0, pp: 1 }, { tp: 0, dp: 1, pp: 1 }, { tp: 1, dp: 1, pp: 1 },
    ]);
    for (let r = 0; r < 8; r++) expect(rankOf(coordinatesOf(r, s), s)).toBe(r);
  });

  it('groups every rank exactly once per axis', () => {
    const g = meshGroupRanks(meshShape(8, 2, 2));
    expect(g.tp).toEqual([[0, 1], [2, 3], [4, 5], [6, 7]]);
    expect(g.dp).toEqual([[0, 2], [1, 3], [4, 6], [5, 7]]);
    expect(g.pp).toEqual([[0, 4], [1, 5], [2, 6], [3, 7]]);
    expect(g.mp).toEqual([[0, 1, 4, 5], [2, 3, 6, 7]]);
    expect(g.embedding).toEqual([[0, 4], [1, 5], [2, 6], [3, 7]]);
    expect(meshGroupRanks(meshShape(8, 2, 1)).embedding).toEqual([]);
  });

  it('creates every group on every rank in the same order and returns this rank\'s', () => {
    const created: number[][] = [];
    const mesh = buildMesh(5, 'world', meshShape(8, 2, 2), (ranks) => {
      created.push(ranks);
      return ranks.join(',');
    });
    expect(created.length).toBe(18);
    expect(mesh).toMatchObject({ tp: '4,5', dp: '5,7', pp: '1,5', mp: '0,1,4,5', embedding: '1,5', coords: { tp: 1, dp: 0, pp: 1 } });
  });

  it('splits the data-parallel axis into DiLoCo replicas: contiguous dp ranks, outer groups across them, a whole-replica group', () => {
    // 8 workers, tp 2, dp 4, 2 replicas of dp 2: rank = dp x 2 + tp
    const g = replicaGroupRanks(meshShape(8, 2, 1), 2);
    expect(g.replica).toEqual([[0, 2], [4, 6], [1, 3], [5, 7]]);
    expect(g.outer).toEqual([[0, 4], [2, 6], [1, 5], [3, 7]]);
    expect(g.whole).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    const mesh = buildMesh(6, 'world', meshShape(8, 2, 1), (ranks) => ranks.join(','), 2);
    expect(mesh.replicas).toEqual({ replica: '4,6', outer: '2,6', whole: '4,5,6,7', index: 1, count: 2 });
    expect(() => replicaGroupRanks(meshShape(6, 1, 1), 4)).toThrow(/6 data-parallel ranks do not split into 4 replicas/);
  });

  it('refuses a world that does not split', () => {
    expect(() => meshShape(6, 4, 1)).toThrow(/6 workers do not split into tensor-parallel groups of 4/);
  });
});
