import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

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

async function trainRun(ws: ReturnType<typeof tinyWorkspace>, name: string, nodes: number, extra: string[]) {
  const out = ws.out(name);
  const r = await runTrainer(['launch', '--nodes', String(nodes), ...tinyJobArgs(ws, ['--out', out, ...JOB, ...extra])]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
  return {
    summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[]; val_loss: number },
    params: new Map([...model.tensors].map(([n, t]) => [n, asFloat32(t)])),
  };
}

describe('tensor parallelism (multi-process)', () => {
  it('tp 2 and 4, alone, with data parallelism and with ZeRO, follow one worker', async () => {
    const ws = tinyWorkspace();
    const ref = await trainRun(ws, 'ref', 1, []);
    for (const [nodes, tp, zero] of [[2, 2, 0], [4, 4, 0], [4, 2, 0], [4, 2, 3]]) {
      const run = await trainRun(ws, `tp${tp}-n${nodes}-z${zero}`, nodes, ['--tp', String(tp), '--zero', String(zero)]);
      const label = `${nodes} workers, tp ${tp}, zero ${zero}`;
      run.summary.losses.forEach((l, i) => expect(Math.abs(l - ref.summary.losses[i]), `${label} step ${i}`).toBeLessThanOrEqual(LOSS_RTOL * ref.summary.losses[i]));
      expect(Math.abs(run.summary.val_loss - ref.summary.val_loss), label).toBeLessThanOrEqual(LOSS_RTOL * ref.summary.val_loss);
      let maxDiff = 0;
      for (const [name, a] of ref.params) {
        const b = run.params.get(name)!;
        for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      }
      expect(maxDiff, label).toBeLessThanOrEqual(PARAM_ATOL);
    }
  }, 300_000);
});
