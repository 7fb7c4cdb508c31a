import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FT, loraWorkspace, summary } from './helpers/lora-run.js';
import { killAllStarted, runTrainer } from './helpers/processes.js';

afterEach(() => killAllStarted());

/**
 * LoRA checkpoints (multi-process): a checkpoint holds the adapters and their optimizer state
 * only (the frozen base is read again from --from on resume); resuming on the same layout is bit
 * for bit the uninterrupted run, on another layout (1 worker) it follows within the data-parallel
 * tolerance.
 */
const { ws, task, base, finetune, prepare } = loraWorkspace();

beforeAll(prepare, 120_000);

describe('LoRA checkpoints (multi-process)', () => {
  it('checkpoints hold the adapters; a resume on the same layout is bitwise, on another layout (1 worker) within 2e-5', async () => {
    const steps = ['--steps', '4', '--eval-every', '4', '--save-every', '2'];
    const whole = await finetune('lora-ckpt', ['--nodes', '2', '--zero', '1', ...steps]);
    const checkpoint = join(whole, 'checkpoints', 'step-000002');
    const manifest = JSON.parse(readFileSync(join(checkpoint, 'manifest.json'), 'utf8')) as { tensors: { name: string }[] };
    expect(manifest.tensors.every((t) => /\.lora_[AB]\.weight$/.test(t.name))).toBe(true);
    expect(manifest.tensors.length).toBe(2 * 7 * 2);
    const same = await finetune('lora-resumed', ['--nodes', '2', '--zero', '1', ...steps, '--resume', checkpoint]);
    const other = await finetune('lora-resharded', ['--nodes', '1', ...steps, '--resume', checkpoint]);
    const ref = summary(whole);
    expect(summary(same).losses.slice(2)).toEqual(ref.losses.slice(2)); // steps 0-1 ran before the checkpoint
    const refAdapter = readFileSync(join(whole, 'adapter', 'adapter_model.safetensors'));
    expect(readFileSync(join(same, 'adapter', 'adapter_model.safetensors')).equals(refAdapter)).toBe(true);
    summary(other).losses.slice(2).forEach((l, i) => expect(Math.abs(l - ref.losses[i + 2]) / ref.losses[i + 2]).toBeLessThan(2e-5));

    // Refused before any worker starts: resuming the adapters without LoRA, or other adapters; exporting a checkpoint that holds no model.
    const without = await runTrainer(['finetune', '--from', base, '--data', task, '--out', ws.out('no-lora'), ...FT, '--steps', '4', '--resume', checkpoint]);
    expect(without.code).not.toBe(0);
    expect(without.stderr + without.stdout).toMatch(/TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH.*holds LoRA adapters only/);
    const exported = await runTrainer(['export', checkpoint, '--out', ws.out('ckpt-export')]);
    expect(exported.code).not.toBe(0);
    expect(exported.stderr).toMatch(/TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH.*LoRA run's checkpoint/);
  }, 120_000);
});
