import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/** eval, generate and export on a model trained by `trainer launch`. */
describe('trainer eval / generate / export', () => {
  const ws = tinyWorkspace();
  const run = ws.out('run');

  beforeAll(async () => {
    const r = await runTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', run, '--steps', '8'])]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 120_000);

  it('eval --token-ids --json scores each sequence and prints loss, perplexity and tokens', async () => {
    const ids = join(ws.dir, 'ids.json');
    writeFileSync(ids, JSON.stringify([[1, 2, 3, 4, 5, 6], [7, 8, 9], [10, 11]]));
    const r = await runTrainer(['eval', run, '--token-ids', ids, '--json', '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.tokens).toBe(5 + 2 + 1);
    expect(out.loss).toBeGreaterThan(0);
    expect(out.perplexity).toBeCloseTo(Math.exp(out.loss), 6);
    // Scoring is deterministic.
    const again = await runTrainer(['eval', run, '--token-ids', ids, '--json', '--backend', 'wasm']);
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!)).toEqual(out);
  });

  it('eval refuses token ids outside the vocabulary and sequences longer than the context', async () => {
    const bad = join(ws.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([[1, 2, 99999]]));
    const r = await runTrainer(['eval', run, '--token-ids', bad, '--json', '--backend', 'wasm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TRAINER_ERR_TOKEN_ID_RANGE|TRAINER_ERR_TOKEN_IDS_FORMAT/);
    const long = join(ws.dir, 'long.json');
    writeFileSync(long, JSON.stringify([Array.from({ length: 40 }, (_, i) => i)]));
    const r2 = await runTrainer(['eval', run, '--token-ids', long, '--json', '--backend', 'wasm']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/TRAINER_ERR_SEQUENCE_TOO_LONG/);
  });

  it('generate continues a prompt, deterministically for a seed', async () => {
    const args = ['generate', run, '--prompt', 'The whale', '--max-new-tokens', '12', '--seed', '7', '--backend', 'wasm'];
    const a = await runTrainer(args);
    const b = await runTrainer(args);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.startsWith('The whale')).toBe(true);
    expect(a.stdout).toBe(b.stdout);
  });

  it('export writes a Hugging Face GPT-2 config and safetensors with GPT-2 names, equal to the model', async () => {
    const out = ws.out('hf');
    const r = await runTrainer(['export', run, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'gpt2', vocab_size: 300, n_positions: 32, n_embd: 32, n_layer: 1, n_head: 2,
      layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', tie_word_embeddings: true,
    });
    const exported = await readSafetensors(join(out, 'model.safetensors'));
    const original = await readSafetensors(join(run, 'model', 'model.safetensors'));
    const shapes = Object.fromEntries([...exported.tensors].map(([n, t]) => [n, t.shape]));
    expect(shapes).toEqual({
      'wte.weight': [300, 32], 'wpe.weight': [32, 32],
      'h.0.ln_1.weight': [32], 'h.0.ln_1.bias': [32],
      'h.0.attn.c_attn.weight': [32, 96], 'h.0.attn.c_attn.bias': [96],
      'h.0.attn.c_proj.weight': [32, 32], 'h.0.attn.c_proj.bias': [32],
      'h.0.ln_2.weight': [32], 'h.0.ln_2.bias': [32],
      'h.0.mlp.c_fc.weight': [32, 128], 'h.0.mlp.c_fc.bias': [128],
      'h.0.mlp.c_proj.weight': [128, 32], 'h.0.mlp.c_proj.bias': [32],
      'ln_f.weight': [32], 'ln_f.bias': [32],
    });
    for (const [name, t] of exported.tensors) expect(Array.from(asFloat32(t))).toEqual(Array.from(asFloat32(original.tensors.get(name)!)));
  });
});
