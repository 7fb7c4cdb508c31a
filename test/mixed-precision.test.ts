import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { estimateModelState, type Precision, type ZeroStage } from '@trainer/engine';
import { resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Mixed precision, multi-process: bf16 and fp16 runs follow fp32's losses closely (16-bit
 * rounding of weights and gradients; compute is fp32), send half the bytes, and hold the model
 * state estimate-memory predicts for their precision.
 */
const JOB = ['--layers', '2', '--global-batch', '8', '--steps', '8', '--lr', '3e-3', '--eval-every', '8'];

async function trainRun(ws: ReturnType<typeof tinyWorkspace>, name: string, nodes: number, extra: string[]) {
  const out = ws.out(name);
  const r = await runTrainer(['launch', '--nodes', String(nodes), ...tinyJobArgs(ws, ['--out', out, ...JOB, ...extra])]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return {
    summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[]; val_loss: number },
    metrics: readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>),
  };
}

describe('mixed precision (multi-process)', () => {
  it('bf16 and fp16 track fp32, halve the bytes sent, and hold the predicted model state', async () => {
    const ws = tinyWorkspace();
    const config = resolveModelConfig('gpt-nano', { layers: 2, heads: 2, dModel: 32, vocabSize: 300, contextLength: 32 });
    const units = unitComputeCosts(config, 'host');
    const segments = segmentSpecs(config);
    for (const zero of [0, 3] as ZeroStage[]) {
      const fp32 = await trainRun(ws, `fp32-z${zero}`, 2, ['--zero', String(zero)]);
      const sentFp32 = fp32.metrics.find((m) => m.rank === 0 && m.step === 3)!.bytes_sent;
      for (const precision of ['bf16', 'fp16'] as Precision[]) {
        const label = `${precision} zero ${zero}`;
        const run = await trainRun(ws, `${precision}-z${zero}`, 2, ['--zero', String(zero), '--precision', precision]);
        run.summary.losses.forEach((l, i) => expect(Math.abs(l - fp32.summary.losses[i]) / fp32.summary.losses[i], `${label} step ${i}`).toBeLessThan(0.01));
        expect(Math.abs(run.summary.val_loss - fp32.summary.val_loss) / fp32.summary.val_loss, label).toBeLessThan(0.01);
        const step3 = run.metrics.filter((m) => m.step === 3);
        const sent = step3.find((m) => m.rank === 0)!.bytes_sent;
        expect(sent / sentFp32, label).toBeGreaterThan(0.45);
        expect(sent / sentFp32, label).toBeLessThan(0.6);
        for (const m of step3) {
          const predicted = estimateModelState(units, segments, zero, 2, m.rank, precision);
          expect(Math.abs(m.model_state_bytes - predicted.total) / predicted.total, `${label} rank ${m.rank}`).toBeLessThanOrEqual(0.1);
          expect(m.optimizer_bytes).toBe(predicted.optimizer);
        }
        if (precision === 'fp16') expect(step3[0].loss_scale ?? step3[1].loss_scale).toBeGreaterThan(1);
      }
    }
  }, 300_000);
});
