import { afterEach, describe, expect, it } from 'vitest';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Equivalence, the test of data parallelism: the same model, data and global batch on 1, 2 and
 * 4 workers (and with gradient accumulation) must follow the same trajectory. Only the order of
 * fp32 additions differs (ring reduction, micro-batch accumulation), so losses agree to ~1e-7
 * relative and nearly every parameter to a few ulps. Adam divides each element's step by its own
 * gradient's scale, so an element whose gradient is near zero turns a last-bit difference of
 * that gradient into a visible difference of its update: measured (seed 1337, 6 steps, lr 3e-3),
 * one element of h.0.mlp.c_proj.weight differs by 2.2e-5 between 1 worker with 8 sequences per
 * micro-batch and 1 worker with 4, exactly as much as between 1 worker and 2 or 4, and every
 * other parameter by far less. The parameter bound is set above that single-process reordering.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 5e-5;

const trainRun = (ws: Workspace, name: string, nodes: number, extra: string[] = []) => trainedRun(ws, name, nodes, ['--steps', '6', '--global-batch', '8', '--eval-every', '3', ...extra]);

describe('data parallel equivalence (multi-process)', () => {
  it('1, 2 and 4 workers, gradient accumulation, 4 workers on 2 machines with hierarchical all-reduce, and gradients reduced on a data-plane thread give the same losses and parameters', async () => {
    const ws = tinyWorkspace();
    const reference = await trainRun(ws, 'w1', 1);
    // 4 workers as 2 machines x 2 (TRAINER_MACHINES): all-reduce inside each machine, then between them (hierarchical).
    const hier = await trainedRun(ws, 'w4-hier', 4, ['--steps', '6', '--global-batch', '8', '--eval-every', '3'], { TRAINER_MACHINES: 'm0,m0,m1,m1' });
    expect(hier.output).toContain('all-reduce over group [0,1,2,3] is hierarchical: 2 machines x 2 ranks');
    expect(hier.output).toContain('ZeRO\'s per-step collectives over 4 data-parallel ranks run on a data-plane thread (they span machines)'); // --comm-thread auto
    // ZeRO 3 with its reduce-scatters and prefetched gathers on a data-plane thread (--comm-thread).
    const zero3Thread = await trainRun(ws, 'w2-zero3-thread', 2, ['--zero', '3', '--comm-thread', 'on']);
    const runs = [await trainRun(ws, 'w2', 2), await trainRun(ws, 'w4', 4), await trainRun(ws, 'w2-accum', 2, ['--micro-batch', '2']), hier, zero3Thread];
    // Gradients reduced on a data-plane thread, in 10 KiB buckets (--bucket-mb: every unit in several): on 2 ranks every element's sum is
    // a + b however the buffer is cut, so the same run bit for bit.
    const threaded = await trainRun(ws, 'w2-thread', 2, ['--comm-thread', 'on', '--bucket-mb', '0.01']);
    expect(threaded.summary.losses).toEqual(runs[0].summary.losses);
    expect(threaded.modelBytes!.equals(runs[0].modelBytes!), 'model.safetensors with --comm-thread differs').toBe(true);
    for (const run of runs) {
      expect(run.summary.losses.length).toBe(6);
      expectSameTrajectory(run, reference, run.out, { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL });
    }
    // The runs really trained: the loss moved.
    expect(reference.summary.losses[5]!).toBeLessThan(reference.summary.losses[0]!);
  });
});
