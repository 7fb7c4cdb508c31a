import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Activation checkpointing is an exact transformation: recomputing a block's forward in backward
 * repeats the same arithmetic, so with data parallelism, ZeRO-3, tensor and pipeline parallelism
 * the losses and final parameters are bit for bit those of the run without it, while the peak
 * TF.js memory of a step goes down (also for a model of a single block).
 */
const JOB = ['--layers', '4', '--heads', '2', '--global-batch', '8', '--micro-batches', '2', '--steps', '3', '--eval-every', '3'];

async function trainRun(ws: ReturnType<typeof tinyWorkspace>, name: string, nodes: number, extra: string[]) {
  const out = ws.out(name);
  const r = await runTrainer(['launch', '--nodes', String(nodes), ...tinyJobArgs(ws, ['--out', out, ...JOB, ...extra])]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
  return {
    losses: (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[] }).losses,
    peak: Math.max(...metrics.filter((m) => m.rank === 0).map((m) => m.peak_tf_bytes)),
    params: [...model.tensors.values()].flatMap((t) => Array.from(asFloat32(t))),
  };
}

describe('activation checkpointing (multi-process)', () => {
  it('gives bit-identical losses and parameters with DP, ZeRO-3, TP and PP, at a lower peak', async () => {
    const ws = tinyWorkspace();
    for (const [nodes, extra] of [[1, []], [1, ['--layers', '1']], [2, ['--zero', '3']], [2, ['--tp', '2']], [2, ['--pp', '2']]] as [number, string[]][]) {
      const label = `${nodes} workers ${extra.join(' ')}`;
      const plain = await trainRun(ws, `plain-${nodes}-${extra.join('')}`, nodes, extra);
      const ckpt = await trainRun(ws, `ckpt-${nodes}-${extra.join('')}`, nodes, [...extra, '--activation-checkpointing']);
      expect(ckpt.losses, label).toEqual(plain.losses);
      expect(ckpt.params, label).toEqual(plain.params);
      expect(ckpt.peak, label).toBeLessThan(plain.peak);
    }
  }, 300_000);
});
