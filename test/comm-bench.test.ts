import { describe, expect, it } from 'vitest';
import { benchAllReduce } from '@trainer/comm';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('allreduce benchmark driver', () => {
  it('measures each size with nccl-tests definitions', async () => {
    const seen: number[] = [];
    const results = await benchAllReduce({ world: 2, sizes: [4096, 1 << 20], reps: 3, onResult: (r) => seen.push(r.bytes) });
    expect(seen).toEqual([4096, 1 << 20]);
    for (const r of results) {
      expect(r.world).toBe(2);
      expect(r.codec).toBe('fp32');
      expect(r.time_ms).toBeGreaterThan(0);
      expect(r.algbw_gbs).toBeCloseTo(r.bytes / (r.time_ms / 1e3) / 1e9, 9);
      expect(r.busbw_gbs).toBeCloseTo(r.algbw_gbs, 12); // 2(n-1)/n = 1 for n = 2
    }
  });

  it('kills every worker when one fails, leaving no process behind', async () => {
    let pids: number[] = [];
    const err = await benchAllReduce({ world: 3, sizes: [1 << 20], crashRank: 1, onSpawn: (p) => (pids = p) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRAINER_ERR_BENCH_FAILED' });
    expect(pids).toHaveLength(3);
    await expect.poll(() => pids.filter(alive), { timeout: 5_000 }).toEqual([]);
  });

  it('refuses bad options before starting anything', async () => {
    await expect(benchAllReduce({ world: 0, sizes: [4096] })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(benchAllReduce({ world: 2, sizes: [4095] })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(benchAllReduce({ world: 2, sizes: [4096], codec: 'int8' as 'fp32' })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
  });
});
