import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrainerError } from '@trainer/errors';
import { configFromHuggingFace, resolvePretrained } from './pretrained.js';

const gpt2 = { model_type: 'gpt2', vocab_size: 300, n_positions: 32, n_layer: 2, n_head: 2, n_embd: 32, layer_norm_epsilon: 1e-5, n_inner: null, activation_function: 'gelu_new' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TrainerError ? `${e.code}: ${e.message}` : String(e);
  }
  return undefined;
}

describe('pretrained models for fine-tuning', () => {
  it('reads a GPT-2 config.json and refuses what the model cannot run', () => {
    expect(configFromHuggingFace(gpt2, 'c')).toEqual({ vocabSize: 300, contextLength: 32, layers: 2, heads: 2, dModel: 32, layerNormEps: 1e-5 });
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_inner: 64 }, 'c'))).toMatch(/^TRAINER_ERR_MODEL_FORMAT: c: n_inner 64 is not supported/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, activation_function: 'relu' }, 'c'))).toMatch(/activation relu is not supported/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_layer: 0 }, 'c'))).toMatch(/n_layer is missing or not a positive integer/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_embd: 33 }, 'c'))).toMatch(/^TRAINER_ERR_MODEL_CONFIG/);
  });

  it('tells a run folder, a model folder, an export and a checkpoint apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-pretrained-'));
    mkdirSync(join(dir, 'run', 'model'), { recursive: true });
    writeFileSync(join(dir, 'run', 'model', 'config.json'), JSON.stringify({ format: 'trainer-model' }));
    mkdirSync(join(dir, 'export'));
    writeFileSync(join(dir, 'export', 'config.json'), JSON.stringify(gpt2));
    mkdirSync(join(dir, 'ckpt'));
    writeFileSync(join(dir, 'ckpt', 'manifest.json'), '{}');
    expect(await resolvePretrained(join(dir, 'run'))).toEqual({ kind: 'model', path: join(dir, 'run', 'model') });
    expect(await resolvePretrained(join(dir, 'run', 'model'))).toEqual({ kind: 'model', path: join(dir, 'run', 'model') });
    expect(await resolvePretrained(join(dir, 'export'))).toEqual({ kind: 'huggingface', path: join(dir, 'export') });
    expect(await resolvePretrained(join(dir, 'ckpt'))).toEqual({ kind: 'checkpoint', path: join(dir, 'ckpt') });
    await expect(resolvePretrained(join(dir, 'none'))).rejects.toMatchObject({ code: 'TRAINER_ERR_MODEL_NOT_FOUND' });
  });
});
