import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxParamDiff, tinyRun } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { inParallel, killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * The Llama family (RoPE, RMSNorm, SwiGLU, grouped-query attention, untied head) in every
 * parallel layout, multi-process: the same equivalence as GPT-2's (test/tensor-parallel.test.ts,
 * pipeline-parallel, zero): each layout follows one worker's trajectory, losses to 2e-5
 * relative and the final parameters to 1e-4 absolute (partial sums in another order, amplified
 * by Adam in near-zero gradients); a checkpoint resumes bitwise on its layout and reshards.
 * The model is llama-nano narrowed to 2 blocks of width 32: 4 query heads of size 8 over 2 KV
 * heads, so tp 2 gives each rank 2 query heads and their 1 KV head.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 1e-4;
const JOB = ['--model', 'llama-nano', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--ffn-hidden', '64', '--global-batch', '8', '--steps', '5', '--eval-every', '5'];

describe('Llama family (multi-process)', () => {
  it('dp x tp, tp x pp, ZeRO 1 and 3, activation checkpointing follow one worker; bf16 tracks it', async () => {
    const ws = tinyWorkspace();
    const layouts = [
      [4, ['--tp', '2', '--zero', '1']],
      [2, ['--zero', '3']],
      [4, ['--tp', '2', '--pp', '2', '--micro-batches', '2', '--activation-checkpointing']],
    ] as [number, string[]][];
    const label = ([nodes, layout]: [number, string[]]) => `${nodes} workers ${layout.join(' ')}`;
    // The runs are independent (each its own folder): the reference and the layouts run 2 at a time.
    const [ref, bf16, ...runs] = await inParallel([
      () => trainedRun(ws, 'ref', 1, JOB),
      () => trainedRun(ws, 'bf16', 4, [...JOB, '--tp', '2', '--zero', '1', '--precision', 'bf16']),
      ...layouts.map(([nodes, layout]) => () => trainedRun(ws, label([nodes, layout]).replaceAll(/[ -]+/g, '_'), nodes, [...JOB, ...layout])),
    ], 2);
    expect(ref!.params.has('lm_head.weight'), 'untied head saved').toBe(true);
    expect(ref!.params.has('wpe.weight'), 'no learned positions').toBe(false);
    expect(ref!.params.get('h.0.attn.k_proj.weight')!.length).toBe(32 * 16); // [C, KV D]
    for (const [i, layout] of layouts.entries()) expectSameTrajectory(runs[i]!, ref!, label(layout), { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL });
    // bf16 (16-bit weights and gradients, fp32 master and compute) tracks fp32 as GPT-2's does (test/mixed-precision.test.ts: 1%).
    bf16!.summary.losses.forEach((l, i) => expect(Math.abs(l! - ref!.summary.losses[i]!) / ref!.summary.losses[i]!, `bf16 step ${i}`).toBeLessThan(0.01));
  }, 300_000);

  it('a tp 2 x pp 2 checkpoint resumes bitwise on its layout and reshards to 1 worker', async () => {
    const ws = tinyWorkspace();
    const job = [...JOB, '--steps', '6', '--eval-every', '3', '--micro-batches', '2'];
    const ref = await trainedRun(ws, 'tp2pp2', 4, [...job, '--tp', '2', '--pp', '2', '--save-every', '3']);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
    // k_proj is column-parallel by KV heads: each tp rank wrote its head's 8 columns.
    const k = manifest.tensors.find((t: { name: string }) => t.name === 'h.0.attn.k_proj.weight');
    expect(k.state.params.map((p: { slice: { cols: number[][] } }) => p.slice.cols)).toEqual([[[0, 8]], [[8, 16]]]);
    // The resumed runs are independent of each other: they run at once.
    const [same, one] = await Promise.all([tinyRun(ws, 'same', 4, [...job, '--tp', '2', '--pp', '2', '--resume', ckpt]), tinyRun(ws, 'one', 1, [...job, '--resume', ckpt])]);
    expect(same.code, same.output).toBe(0);
    expect(same.summary.losses.slice(3)).toEqual(ref.summary.losses.slice(3));
    expect(same.modelBytes!.equals(ref.modelBytes!), 'model.safetensors differs').toBe(true);
    expect(one.code, one.output).toBe(0);
    one.summary.losses.slice(3).forEach((l, i) => expect(Math.abs(l! - ref.summary.losses[3 + i]!)).toBeLessThanOrEqual(LOSS_RTOL * ref.summary.losses[3 + i]!));
    expect(maxParamDiff(one, ref)).toBeLessThanOrEqual(PARAM_ATOL);
  }, 300_000);
});
