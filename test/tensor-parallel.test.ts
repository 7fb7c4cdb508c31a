import { afterEach, describe, it } from 'vitest';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Tensor parallelism, multi-process: layouts (dp x tp) over 2 and 4 workers, alone and with
 * ZeRO, follow the single worker's trajectory; the gathered final parameters match. Partial sums
 * are added in another order (row-parallel all-reduce, sharded logits), hence fp32 tolerances:
 * losses to 2e-5 relative; parameters to 1e-4 absolute, a few percent of one AdamW step at this
 * learning rate (3e-3), since Adam divides each gradient by its own running magnitude and so
 * amplifies rounding in near-zero gradients.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 1e-4;
const JOB = ['--layers', '2', '--heads', '4', '--global-batch', '8', '--steps', '5', '--eval-every', '5'];

const trainRun = (ws: Workspace, name: string, nodes: number, extra: string[]) => trainedRun(ws, name, nodes, [...JOB, ...extra]);

describe('tensor parallelism (multi-process)', () => {
  it('tp 2 and 4, alone, with data parallelism and with ZeRO, follow one worker', async () => {
    const ws = tinyWorkspace();
    const ref = await trainRun(ws, 'ref', 1, []);
    for (const [nodes, tp, zero] of [[2, 2, 0], [4, 4, 0], [4, 2, 0], [4, 2, 3]]) {
      const run = await trainRun(ws, `tp${tp}-n${nodes}-z${zero}`, nodes, ['--tp', String(tp), '--zero', String(zero)]);
      const label = `${nodes} workers, tp ${tp}, zero ${zero}`;
      expectSameTrajectory(run, ref, label, { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL });
    }
  }, 300_000);
});
