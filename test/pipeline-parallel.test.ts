import { afterEach, describe, expect, it } from 'vitest';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Pipeline parallelism (1F1B), multi-process: layouts dp x tp x pp over 2 and 4 workers, with
 * tensor parallelism and with ZeRO, follow one worker running the same micro-batches; the
 * gathered final parameters match (the tied embedding's two copies stay one). Tolerances as for
 * tensor parallelism (test/tensor-parallel.test.ts).
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 1e-4;
const JOB = ['--layers', '4', '--heads', '2', '--global-batch', '8', '--micro-batches', '4', '--steps', '5', '--eval-every', '5'];

const trainRun = (ws: Workspace, name: string, nodes: number, extra: string[]) => trainedRun(ws, name, nodes, [...JOB, ...extra]);

describe('pipeline parallelism (multi-process)', () => {
  it('pp 2 and 4, with data and tensor parallelism and with ZeRO, follow one worker', async () => {
    const ws = tinyWorkspace();
    const ref = await trainRun(ws, 'ref', 1, []);
    const layouts: [number, number, number, number, string[]][] = [
      // nodes, tp, pp, zero, extra
      [2, 1, 2, 0, []], // 1 x 1 x 2
      [4, 1, 2, 0, []], // 2 x 1 x 2
      [4, 2, 2, 0, []], // 1 x 2 x 2
      [4, 1, 4, 0, []], // 1 x 1 x 4
      [4, 1, 2, 2, []], // 2 x 1 x 2 with ZeRO-2
      [2, 1, 2, 0, ['--pp-split', '1,3']], // an uneven split
    ];
    for (const [nodes, tp, pp, zero, extra] of layouts) {
      const label = `${nodes} workers, tp ${tp}, pp ${pp}, zero ${zero} ${extra.join(' ')}`;
      const run = await trainRun(ws, `n${nodes}-tp${tp}-pp${pp}-z${zero}${extra.length ? '-split' : ''}`, nodes, ['--tp', String(tp), '--pp', String(pp), '--zero', String(zero), ...extra]);
      expectSameTrajectory(run, ref, label, { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL });
      // Every stage reports its idle share of the schedule.
      const stages = new Set(run.metrics.filter((m) => typeof m.bubble === 'number').map((m) => m.pipeline_stage));
      expect(stages.size, label).toBe(pp);
    }
  }, 400_000);

  it('refuses more stages than blocks and splits that do not add up', async () => {
    const ws = tinyWorkspace();
    const deep = await runTrainer(['launch', '--nodes', '4', ...tinyJobArgs(ws, ['--out', ws.out('a'), '--layers', '2', '--pp', '4'])]);
    expect(deep.code).toBe(2);
    expect(deep.stderr).toMatch(/TRAINER_ERR_PP_TOO_DEEP/);
    const split = await runTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', ws.out('b'), ...JOB, '--pp', '2', '--pp-split', '1,1'])]);
    expect(split.code).toBe(2);
    expect(split.stderr).toMatch(/TRAINER_ERR_PP_SPLIT: the pipeline split 1,1 does not assign the model's 4 blocks to 2 stages/);
  });
});
