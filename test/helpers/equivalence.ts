import { expect } from 'vitest';
import { maxParamDiff, tinyRun, type TinyRun, type Workspace } from './checkpoint-run.js';

/**
 * The comparison every parallel feature is tested by: a tiny job on N workers must give the
 * reference run's losses per step and final parameters, within stated tolerances.
 */

/** tinyRun that must succeed (the test fails with the run's output otherwise). */
export async function trainedRun(ws: Workspace, name: string, nodes: number, args: string[], env: NodeJS.ProcessEnv = {}): Promise<TinyRun> {
  const run = await tinyRun(ws, name, nodes, args, env);
  expect(run.code, run.output).toBe(0);
  return run;
}

/** Losses per step and the validation loss within lossRtol (relative), final parameters within paramAtol. */
export function expectSameTrajectory(run: TinyRun, ref: TinyRun, label: string, tol: { lossRtol: number; paramAtol: number }): void {
  const refLosses = ref.summary.losses as number[];
  (run.summary.losses as number[]).forEach((loss, i) => expect(Math.abs(loss - refLosses[i]), `${label} step ${i}`).toBeLessThanOrEqual(tol.lossRtol * Math.abs(refLosses[i])));
  expect(Math.abs(run.summary.val_loss - ref.summary.val_loss), label).toBeLessThanOrEqual(tol.lossRtol * ref.summary.val_loss);
  expect(maxParamDiff(ref, run), label).toBeLessThanOrEqual(tol.paramAtol);
}
