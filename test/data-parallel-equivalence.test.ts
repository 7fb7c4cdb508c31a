import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Equivalence, the test of data parallelism: the same model, data and global batch on 1, 2 and
 * 4 workers (and with gradient accumulation) must follow the same trajectory. Only the order of
 * fp32 additions differs (ring reduction, micro-batch accumulation), so losses agree to ~1e-6
 * relative and parameters to a few ulps of their scale.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 2e-5;

async function trainRun(ws: ReturnType<typeof tinyWorkspace>, name: string, nodes: number, extra: string[] = []) {
  const out = ws.out(name);
  const r = await runTrainer(['launch', '--nodes', String(nodes), ...tinyJobArgs(ws, ['--out', out, '--steps', '6', '--global-batch', '8', '--eval-every', '3', ...extra])]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[]; val_loss: number };
  const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
  return { summary, model };
}

describe('data parallel equivalence (multi-process)', () => {
  it('1, 2 and 4 workers, and gradient accumulation, give the same losses and parameters', async () => {
    const ws = tinyWorkspace();
    const reference = await trainRun(ws, 'w1', 1);
    const runs = [await trainRun(ws, 'w2', 2), await trainRun(ws, 'w4', 4), await trainRun(ws, 'w2-accum', 2, ['--micro-batch', '2'])];
    for (const run of runs) {
      expect(run.summary.losses.length).toBe(6);
      run.summary.losses.forEach((loss, i) => {
        expect(Math.abs(loss - reference.summary.losses[i])).toBeLessThanOrEqual(LOSS_RTOL * Math.abs(reference.summary.losses[i]));
      });
      expect(Math.abs(run.summary.val_loss - reference.summary.val_loss)).toBeLessThanOrEqual(LOSS_RTOL * reference.summary.val_loss);
      let maxDiff = 0;
      for (const [name, t] of reference.model.tensors) {
        const a = asFloat32(t);
        const b = asFloat32(run.model.tensors.get(name)!);
        for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      }
      expect(maxDiff).toBeLessThanOrEqual(PARAM_ATOL);
    }
    // The runs really trained: the loss moved.
    expect(reference.summary.losses[5]).toBeLessThan(reference.summary.losses[0]);
  });
});
