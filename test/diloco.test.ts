import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tinyRun } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { inParallel, killAllStarted, runTrainer } from './helpers/processes.js';
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
    // Independent runs (each its own folder) run at once.
    const [ref, run] = await Promise.all([
      trainedRun(ws, 'dp', 2, job),
      trainedRun(ws, 'diloco-one', 2, [...job, '--sync-every', '2', '--replicas', '1', '--outer-lr', '1', '--outer-momentum', '0']),
    ]);
    expect(run.output).toMatch(/DiLoCo: 1 replica\(s\) of 2 data-parallel rank\(s\) train apart and sync every 2 steps/);
    // a - (a - b) is b up to one rounding per sync
    expectSameTrajectory(run, ref, 'DiLoCo, 1 replica', { lossRtol: 1e-5, paramAtol: 1e-5 });
  }, 120_000);

  it('two replicas: nothing on the network between syncs, one pseudo-gradient all-reduce at each (half the bytes in bf16); the run ends synced', async () => {
    const ws = tinyWorkspace();
    const job = ['--steps', '8', '--sync-every', '4', '--eval-every', '4'];
    // Independent runs (each its own folder), the tensor-parallel ones below included, run 2 at a time.
    const [fp32, bf16, tp, tpSolo] = await inParallel([
      () => trainedRun(ws, 'diloco-fp32', 2, job),
      () => trainedRun(ws, 'diloco-bf16', 2, [...job, '--outer-precision', 'bf16']),
      () => trainedRun(ws, 'diloco-tp', 4, ['--tp', '2', '--steps', '4', '--sync-every', '2']),
      () => trainedRun(ws, 'tp-alone', 2, ['--tp', '2', '--steps', '4', '--global-batch', '2']), // one replica's share of the batch
    ], 2);
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
    expect((tp.metrics.filter((m) => m.rank === 3 && typeof m.bytes_sent === 'number') as Record<string, number>[]).map((m) => m.synced)).toEqual([0, 1, 0, 1]);
    const between = (run: typeof tp, rank: number) => (run.metrics.filter((m) => m.rank === rank && typeof m.bytes_sent === 'number' && !m.synced) as Record<string, number>[]).map((m) => m.bytes_sent);
    expect(between(tp, 3), 'a replica of tp 2 sends what tp 2 alone sends').toEqual(between(tpSolo, 1).filter((_, i) => i % 2 === 0));
  }, 180_000);

  it('checkpoints and resume: every replica\'s own AdamW state and the outer state saved (version 3); the resumed run is bitwise the uninterrupted one, overlapped syncs and ZeRO 1 inside included', async () => {
    const ws = tinyWorkspace();
    // 4 workers = 2 replicas of 2 (ZeRO 1 inside each), syncs every 2 steps, each landing 1 step later
    // (--outer-overlap: h/2); step 3's checkpoint falls between a sync and its landing.
    const job = ['--steps', '6', '--eval-every', '3', '--zero', '1', '--sync-every', '2', '--replicas', '2', '--outer-overlap'];
    // (Independent runs, each in its own folder, run at once: the run with a killed worker beside the reference.)
    const [ref, killed] = await Promise.all([
      trainedRun(ws, 'ref', 4, [...job, '--save-every', '3']),
      // A worker killed while a sync is in flight on the data-plane threads.
      trainedRun(ws, 'killed', 4, [...job, '--save-every', '3', '--max-restarts', '1', '--heartbeat-timeout', '3'], { TRAINER_FAULT: 'rank=1,step=4,kind=kill' }),
    ]);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
    expect(manifest.version).toBe(3);
    expect(manifest.outer).toEqual({ replicas: 2, syncEvery: 2, lr: 0.7, momentum: 0.9, precision: 'fp32', overlap: 1 });
    // step 1's sync lands before step 3: saved after step 2, its average is still to apply (outer_pending)
    expect(manifest.stateDtypes).toEqual({ params: 'F32', m: 'F32', v: 'F32', outer_anchor: 'F32', outer_momentum: 'F32', outer_base: 'F32', outer_pending: 'F32' });
    const replicasOf = (kind: string) => new Set(manifest.tensors.flatMap((t: { state: Record<string, { replica?: number }[]> }) => t.state[kind].map((p) => p.replica ?? 0)));
    expect([...replicasOf('m')].sort()).toEqual([0, 1]);
    expect([...replicasOf('outer_base')].sort()).toEqual([0, 1]);
    expect([...replicasOf('outer_anchor')]).toEqual([0]);
    expect([...replicasOf('outer_pending')]).toEqual([0]);
    const [verify, resumed, other] = await Promise.all([
      runTrainer(['checkpoint', 'verify', ckpt]),
      trainedRun(ws, 'resumed', 4, [...job, '--resume', ckpt]),
      // Another replica count.
      tinyRun(ws, 'other', 4, ['--steps', '6', '--zero', '1', '--sync-every', '2', '--replicas', '4', '--resume', ckpt]),
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    for (let step = 3; step < 6; step++) expect(resumed.summary.losses[step], `step ${step}`).toBe(ref.summary.losses[step]);
    expect(resumed.summary.val_loss).toBe(ref.summary.val_loss);
    expect(resumed.modelBytes!.equals(ref.modelBytes!), 'model.safetensors differs').toBe(true);

    // A worker killed while a sync is in flight on the data-plane threads: the group restarts from step 3's checkpoint and ends bitwise as the uninterrupted run.
    expect((killed.summary as { restarts?: number }).restarts).toBe(1);
    expect(killed.summary.losses).toEqual(ref.summary.losses);
    expect(killed.modelBytes!.equals(ref.modelBytes!), 'model.safetensors after the restart differs').toBe(true);

    // Another replica count is refused by name.
    expect(other.code, other.output).not.toBe(0);
    expect(other.output).toMatch(/TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH: .* written by 2 DiLoCo replica\(s\) with overlapped syncs; this run has 4/);
  }, 180_000);

  it('refuses what it cannot do, with a coded error before any worker starts', async () => {
    const ws = tinyWorkspace();
    const cases: [string[], RegExp][] = [
      [['--sync-every', '2', '--replicas', '3'], /TRAINER_ERR_MESH: 2 data-parallel ranks do not split into 3 replicas/],
      [['--outer-overlap'], /TRAINER_ERR_USAGE: --outer-overlap was given without --sync-every/],
      [['--sync-every', '2', '--outer-overlap', '2'], /TRAINER_ERR_USAGE: --outer-overlap 2 is not below --sync-every 2: a sync must land before the next one starts/],
      [['--replicas', '2'], /TRAINER_ERR_USAGE: --replicas was given without --sync-every/],
    ];
    const refused = await Promise.all(cases.map(([args]) => tinyRun(ws, `bad-${args.join('')}`, 2, args)));
    for (const [i, [, message]] of cases.entries()) {
      const r = refused[i]!;
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
    }
  }, 60_000);
});
