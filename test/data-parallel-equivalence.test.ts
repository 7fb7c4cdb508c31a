import { afterEach, describe, expect, it } from 'vitest';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Equivalence, the test of data parallelism: the same model, data and global batch on 1, 2 and
 * 4 workers (and with gradient accumulation) must follow the same trajectory. Only the order of
 * fp32 additions differs (ring reduction, micro-batch accumulation), so losses agree to ~1e-6
 * relative and parameters to a few ulps of their scale.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 2e-5;

const trainRun = (ws: Workspace, name: string, nodes: number, extra: string[] = []) => trainedRun(ws, name, nodes, ['--steps', '6', '--global-batch', '8', '--eval-every', '3', ...extra]);

describe('data parallel equivalence (multi-process)', () => {
  it('1, 2 and 4 workers, and gradient accumulation, give the same losses and parameters', async () => {
    const ws = tinyWorkspace();
    const reference = await trainRun(ws, 'w1', 1);
    const runs = [await trainRun(ws, 'w2', 2), await trainRun(ws, 'w4', 4), await trainRun(ws, 'w2-accum', 2, ['--micro-batch', '2'])];
    for (const run of runs) {
      expect(run.summary.losses.length).toBe(6);
      expectSameTrajectory(run, reference, run.out, { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL });
    }
    // The runs really trained: the loss moved.
    expect(reference.summary.losses[5]!).toBeLessThan(reference.summary.losses[0]!);
  });
});
