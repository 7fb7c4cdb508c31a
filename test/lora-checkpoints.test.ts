import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loraWorkspace, summary } from './helpers/lora-run.js';
import { killAllStarted } from './helpers/processes.js';

afterEach(() => killAllStarted());

/**
 * LoRA checkpoints (multi-process): a checkpoint holds the adapters and their optimizer state
 * only (the frozen base is read again from --from on resume); resuming on the same layout is bit
 * for bit the uninterrupted run, on another layout (1 worker) it follows within the data-parallel
 * tolerance.
 */
const { finetune, prepare } = loraWorkspace();

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
  }, 120_000);
});
