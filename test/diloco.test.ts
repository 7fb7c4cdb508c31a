import { afterEach, describe, expect, it } from 'vitest';
import { tinyRun } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Low-communication training (DiLoCo, --sync-every H) across worker processes: replicas that
 * train apart and meet every H steps. With one replica, outer lr 1 and momentum 0 a sync changes
 * nothing but rounding, so the run follows every-step data parallelism; with two, the network
 * carries nothing between syncs and one pseudo-gradient all-reduce at each. (The outer step's
 * math against a reference: packages/engine/src/outer/diloco.test.ts.)
 */
describe('DiLoCo (--sync-every), multi-process', () => {
  it('one replica, outer lr 1 and momentum 0: the trajectory of every-step data parallelism (ZeRO 1 inside, 2 workers)', async () => {
    const ws = tinyWorkspace();
    const job = ['--zero', '1', '--steps', '6', '--eval-every', '3'];
    const ref = await trainedRun(ws, 'dp', 2, job);
    const run = await trainedRun(ws, 'diloco-one', 2, [...job, '--sync-every', '2', '--replicas', '1', '--outer-lr', '1', '--outer-momentum', '0']);
    expect(run.output).toMatch(/DiLoCo: 1 replica\(s\) of 2 data-parallel rank\(s\) train apart and sync every 2 steps/);
    // a - (a - b) is b up to one rounding per sync
    expectSameTrajectory(run, ref, 'DiLoCo, 1 replica', { lossRtol: 1e-5, paramAtol: 1e-5 });
  }, 120_000);

  it('two replicas: nothing on the network between syncs, one pseudo-gradient all-reduce at each (half the bytes in bf16); the run ends synced', async () => {
    const ws = tinyWorkspace();
    const job = ['--steps', '8', '--sync-every', '4', '--eval-every', '4'];
    const fp32 = await trainedRun(ws, 'diloco-fp32', 2, job);
    const bf16 = await trainedRun(ws, 'diloco-bf16', 2, [...job, '--outer-precision', 'bf16']);
    const synced: Record<string, number[]> = {};
    for (const [label, run] of [['fp32', fp32], ['bf16', bf16]] as const) {
      for (const rank of [0, 1]) {
        const rows = run.metrics.filter((m) => m.rank === rank && typeof m.bytes_sent === 'number') as Record<string, number>[];
        expect(rows.map((m) => m.synced), `${label} rank ${rank}`).toEqual([0, 0, 0, 1, 0, 0, 0, 1]);
        expect(rows.filter((m) => !m.synced).map((m) => m.bytes_sent), `${label} rank ${rank}: bytes between syncs`).toEqual([0, 0, 0, 0, 0, 0]);
        if (rank === 0) synced[label] = rows.filter((m) => m.synced).map((m) => m.bytes_sent);
      }
      const losses = run.summary.losses as number[];
      expect(losses[7], label).toBeLessThan(losses[0]);
      expect(Number.isFinite(run.summary.val_loss)).toBe(true);
    }
    expect(synced.fp32[0]).toBeGreaterThan(0);
    for (const [i, bytes] of synced.bf16.entries()) expect(bytes / synced.fp32[i]).toBeCloseTo(0.5, 1);
    // Tensor parallel inside each replica (4 workers: 2 replicas of tp 2): the replicas still meet as asked.
    // (the gradient norm over the replica's own ranks: between syncs each replica's traffic stays inside it)
    const tp = await trainedRun(ws, 'diloco-tp', 4, ['--tp', '2', '--steps', '4', '--sync-every', '2']);
    expect((tp.metrics.filter((m) => m.rank === 3 && typeof m.bytes_sent === 'number') as Record<string, number>[]).map((m) => m.synced)).toEqual([0, 1, 0, 1]);
    const tpSolo = await trainedRun(ws, 'tp-alone', 2, ['--tp', '2', '--steps', '4', '--global-batch', '2']); // one replica's share of the batch
    const between = (run: typeof tp, rank: number) => (run.metrics.filter((m) => m.rank === rank && typeof m.bytes_sent === 'number' && !m.synced) as Record<string, number>[]).map((m) => m.bytes_sent);
    expect(between(tp, 3), 'a replica of tp 2 sends what tp 2 alone sends').toEqual(between(tpSolo, 1).filter((_, i) => i % 2 === 0));
  }, 180_000);

  it('refuses what it cannot do, with a coded error before any worker starts', async () => {
    const ws = tinyWorkspace();
    const cases: [string[], RegExp][] = [
      [['--sync-every', '2', '--replicas', '3'], /TRAINER_ERR_MESH: 2 data-parallel ranks do not split into 3 replicas/],
      [['--sync-every', '2', '--save-every', '2'], /TRAINER_ERR_USAGE: --sync-every does not combine with --save-every or --resume yet/],
      [['--replicas', '2'], /TRAINER_ERR_USAGE: --replicas was given without --sync-every/],
    ];
    for (const [args, message] of cases) {
      const r = await tinyRun(ws, `bad-${args.join('')}`, 2, args);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
    }
  }, 60_000);
});
