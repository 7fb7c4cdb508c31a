import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyRun } from './helpers/checkpoint-run.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Faults around checkpoints, multi-process and through the CLI: a full disk or a corrupted shard
 * during a save (the save fails, clearly; training goes on; the previous checkpoint and `latest`
 * stay), and every bad checkpoint given to --resume, inspect, verify and export.
 */
const JOB = ['--steps', '4', '--save-every', '2'];

describe('checkpoint faults (multi-process)', () => {
  it('a disk that fills up mid-save fails that save with DISK_FULL naming the file; the previous checkpoint and latest stay intact', async () => {
    const ws = tinyWorkspace();
    const run = await tinyRun(ws, 'full', 2, [...JOB, '--keep-last', '1'], { TRAINER_SAVE_FAULT: 'rank=1,step=4,kind=enospc' });
    expect(run.code, run.output).toBe(0); // a failed save does not stop training
    const root = join(run.out, 'checkpoints');
    // The error names the shard file (in the save's temporary folder: <root>/.tmp-step-000004-<run id>/).
    expect(run.output).toMatch(new RegExp(`TRAINER_ERR_CHECKPOINT_DISK_FULL: no space left on the device writing ${root}/\\.tmp-step-000004-[a-z0-9]+/rank-00001-of-00002\\.safetensors`));
    expect(run.output).toContain('checkpoint step-000004 was NOT saved: TRAINER_ERR_CHECKPOINT_DISK_FULL');
    expect(run.output).toContain('step-000002 and latest are intact');
    expect(readFileSync(join(root, 'latest'), 'utf8')).toBe('step-000002\n');
    expect(readdirSync(root).sort()).toEqual(['latest', 'step-000002']); // keep-last 1 did not remove it, no debris
    const verify = await runTrainer(['checkpoint', 'verify', root]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(run.summary.checkpoints!.map((c) => [c.kind, c.step, c.code ?? null])).toEqual([
      ['committed', 2, null], ['failed', 4, 'TRAINER_ERR_CHECKPOINT_DISK_FULL'],
    ]);
  }, 120_000);

  it('a shard corrupted on its way to disk is caught by the coordinator\'s checksum check before the commit', async () => {
    const ws = tinyWorkspace();
    const run = await tinyRun(ws, 'corrupt', 2, JOB, { TRAINER_SAVE_FAULT: 'rank=0,step=4,kind=corrupt' });
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/checkpoint step-000004 was NOT saved: TRAINER_ERR_CHECKPOINT_CHECKSUM: \S+rank-00000-of-00002\.safetensors has SHA-256/);
    expect(readFileSync(join(run.out, 'checkpoints', 'latest'), 'utf8')).toBe('step-000002\n');
    expect(existsSync(join(run.out, 'checkpoints', 'step-000004'))).toBe(false);
  }, 120_000);

  it('refuses bad checkpoints on --resume (each error naming the file), verifies and inspects, and exports from a checkpoint of any layout', async () => {
    const ws = tinyWorkspace();
    const run = await tinyRun(ws, 'good', 2, [...JOB, '--zero', '3']);
    expect(run.code, run.output).toBe(0);
    const root = join(run.out, 'checkpoints');
    const ckpt = join(root, 'step-000002');
    const resume = (path: string, extra: string[] = []) => runTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', ws.out('resumed'), ...JOB, '--resume', path, ...extra])]);

    // Export from the last checkpoint (written by 2 ZeRO-3 ranks) equals the final model.
    const exported = await runTrainer(['export', root, '--out', ws.out('export')]);
    expect(exported.code, exported.stderr).toBe(0);
    const a = await readSafetensors(join(ws.out('export'), 'model.safetensors'));
    const b = await readSafetensors(join(run.out, 'model', 'model.safetensors'));
    expect(a.tensors.size).toBe(b.tensors.size);
    for (const [name, t] of b.tensors) expect(Array.from(asFloat32(a.tensors.get(name)!)), name).toEqual(Array.from(asFloat32(t)));
    const evaluated = await runTrainer(['eval', ckpt, '--data', ws.corpus, '--cache-dir', ws.cache, '--backend', 'wasm', '--batches', '1', '--json']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout).perplexity).toBeGreaterThan(1);

    const inspect = await runTrainer(['checkpoint', 'inspect', ckpt, '--json']);
    expect(inspect.code, inspect.stderr).toBe(0);
    const info = JSON.parse(inspect.stdout);
    expect(info).toMatchObject({ step: 2, optimizerStep: 2, layout: { world: 2, dp: 2, tp: 1, pp: 1, zeroStage: 3, precision: 'fp32' }, lossScale: null });
    expect(info.rng.sampler).toEqual({ kind: 'stateless', seed: 1337, nextStep: 2 });
    expect(info.tensors.length).toBe(16);
    expect(info.bytes.params).toBe(4 * info.parameters);
    expect(info.stateDtypes).toEqual({ params: 'F32', m: 'F32', v: 'F32' }); // no 16-bit parameters under fp32
    expect(info.bytes.params16).toBeUndefined();
    const text = await runTrainer(['checkpoint', 'inspect', ckpt]);
    expect(text.stdout).toMatch(/layout +world 2 = dp 2 x tp 1 x pp 1, ZeRO stage 3, fp32/);

    // Another model than the checkpoint's.
    let r = await resume(ckpt, ['--d-model', '64']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH: ${join(ckpt, 'manifest.json')} was written for another model than the one requested (dModel: checkpoint 32, requested 64)`);
    // Nothing left to train.
    r = await resume(join(root, 'step-000004'));
    expect(r.stderr).toContain('TRAINER_ERR_RESUME_PAST_END');

    // A truncated shard, then a missing one: verify and --resume name the file.
    const shard = join(ckpt, 'rank-00001-of-00002.safetensors');
    const original = readFileSync(shard);
    truncateSync(shard, original.length - 100);
    const verify = await runTrainer(['checkpoint', 'verify', ckpt]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/FAIL +rank-00001-of-00002\.safetensors .*TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED/);
    r = await resume(ckpt);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED: shard file ${shard} is ${original.length - 100} bytes, the manifest says ${original.length}`);
    writeFileSync(shard, original);
    const manifestPath = join(ckpt, 'manifest.json');
    const manifest = readFileSync(manifestPath, 'utf8');
    writeFileSync(manifestPath, manifest.replace('"version": 2', '"version": 4'));
    r = await resume(ckpt);
    expect(r.stderr).toContain(`TRAINER_ERR_CHECKPOINT_VERSION: ${manifestPath} has checkpoint format version 4, newer than this trainer reads versions 1 to 3`);
    writeFileSync(manifestPath, manifest);
    rmSync(shard);
    r = await resume(ckpt);
    expect(r.stderr).toContain(`TRAINER_ERR_CHECKPOINT_SHARD_MISSING: shard file ${shard} is missing`);
    // A folder that was never committed (no manifest) is not a checkpoint.
    rmSync(manifestPath);
    r = await resume(ckpt);
    expect(r.stderr).toContain('TRAINER_ERR_CHECKPOINT_NOT_FOUND');
    expect(r.stderr).toContain('never committed');
  }, 180_000);
});
