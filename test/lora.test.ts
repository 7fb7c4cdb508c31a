import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readPeftAdapter, readSafetensors, asFloat32 } from '@trainer/checkpoint';
import { FT, LORA, loraWorkspace, summary } from './helpers/lora-run.js';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { maxAbsDiff, referenceLogits, torchPython } from './helpers/torch-reference.js';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';

afterEach(() => killAllStarted());

/**
 * LoRA chat fine-tuning, multi-process, from a Hugging Face Llama folder with a tokenizer.json
 * and a chat template (helpers/lora-run.ts: a tiny Llama, GPT-2's published tokenizer with
 * ChatML's tokens, Qwen2.5's published tokenizer_config.json; {"messages"} lines, loss on the
 * assistant turns): 4 workers as tp 2 x dp 2 (with packed rows) and as pp 2 x dp 2 with ZeRO-3
 * follow 1 worker (unpacked), losses and adapters; and the two exports agree: the merged model is
 * the base plus alpha/r B A for every adapted weight (computed here from the PEFT file and the
 * --from folder) and every other tensor the base's, bit for bit. The three training runs use
 * --lora-dropout 0.05 (no extra run): the mask is keyed by the example's global index and
 * position, so tp 2 x dp 2 with packed rows and pp 2 x dp 2 drop what 1 worker drops.
 */
const { ws, task, base, prepare, finetune } = loraWorkspace();
/** LoRA dropout on every training run of this file (the PEFT config carries it). */
const DROPOUT = ['--lora-dropout', '0.05'];

/** max |a - b|. */
function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |a - b| / max |b|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

beforeAll(prepare, 120_000);

describe('LoRA fine-tuning (multi-process)', () => {
  let one: string;

  /** Losses within 2e-5 relative and every adapter tensor within 1e-4 absolute of the 1-worker run's. */
  async function expectFollows(out: string): Promise<void> {
    const ref = summary(one);
    summary(out).losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]) / ref.losses[i], `${out} step ${i}`).toBeLessThan(2e-5));
    const refAdapter = await readPeftAdapter(join(one, 'adapter'));
    const adapter = await readPeftAdapter(join(out, 'adapter'));
    expect([...adapter.tensors.keys()].sort()).toEqual([...refAdapter.tensors.keys()].sort());
    // Absolute, as the other parallel tests compare parameters: A's first gradients are tiny (B starts at
    // zero) and AdamW normalises them, so reduction-order differences reach ~1e-4 of a tensor's largest value.
    for (const [name, t] of refAdapter.tensors) expect(maxAbs(adapter.tensors.get(name)!.values, t.values), `${out} ${name}`).toBeLessThan(1e-4); // measured 2.4e-6
  }

  it('chat data, rank 8, dropout 0.05: 4 workers (tp 2 x dp 2, packed rows) follow 1 worker: losses 2e-5 relative, adapters 1e-4 absolute', async () => {
    one = ws.out('lora-1');
    const r = await runTrainer(['finetune', '--from', base, '--data', task, '--out', one, ...FT, ...LORA, ...DROPOUT, '--nodes', '1']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/chat lines are rendered with the model's chat template/);
    expect(r.stdout + r.stderr).toMatch(/trained tokens: completions, or assistant turns of chats/);
    await expectFollows(await finetune('lora-tp2', ['--nodes', '4', '--tp', '2', '--pack', ...DROPOUT]));
  }, 240_000);

  it('pp 2 x dp 2 with ZeRO-3 follows 1 worker: each stage trains its blocks\' adapters, assembled into one PEFT adapter', async () => {
    await expectFollows(await finetune('lora-pp2', ['--nodes', '4', '--pp', '2', '--zero', '3', ...DROPOUT]));
  }, 120_000);

  it('exports a PEFT adapter and a merged model that agree: merged = base + alpha/r B A, every other tensor the base bit for bit', async () => {
    const peftDir = ws.out('peft');
    const mergedDir = ws.out('merged');
    let r = await runTrainer(['export', one, '--out', peftDir]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    r = await runTrainer(['export', one, '--out', mergedDir, '--merge']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The merged folder is a chat model as Hugging Face keeps one: its tokenizer and chat template go along.
    expect(JSON.parse(readFileSync(join(mergedDir, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(JSON.parse(readFileSync(join(base, 'tokenizer_config.json'), 'utf8')).chat_template);
    const sameTokenizer = isDeepStrictEqual(JSON.parse(readFileSync(join(mergedDir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(base, 'tokenizer.json'), 'utf8')));
    expect(sameTokenizer, 'the merged folder carries the base tokenizer.json').toBe(true);
    const { config, tensors } = await readPeftAdapter(peftDir);
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 16, lora_dropout: 0.05, bias: 'none', fan_in_fan_out: false, modules_to_save: null });
    expect((config.target_modules as string[]).sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    expect(tensors.size).toBe(2 * 7 * 2);
    const baseTensors = (await readSafetensors(join(base, 'model.safetensors'))).tensors;
    const merged = (await readSafetensors(join(mergedDir, 'model.safetensors'))).tensors;
    expect([...merged.keys()].sort()).toEqual([...baseTensors.keys()].sort());
    const scale = 16 / 8;
    let adapted = 0;
    for (const [name, t] of baseTensors) {
      const m = asFloat32(merged.get(name)!);
      const w = asFloat32(t);
      const a = tensors.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_A.weight`);
      const b = tensors.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_B.weight`);
      if (!a || !b) {
        expect(Buffer.from(m.buffer, m.byteOffset, m.byteLength).equals(Buffer.from(w.buffer, w.byteOffset, w.byteLength)), `${name} untouched`).toBe(true);
        continue;
      }
      adapted++;
      // PEFT: W [out, in], lora_A [r, in], lora_B [out, r]; merged W' = W + s B A.
      const [outDim, inDim] = t.shape;
      const rank = a.shape[0];
      expect(a.shape).toEqual([rank, inDim]);
      expect(b.shape).toEqual([outDim, rank]);
      const expected = new Float32Array(w.length);
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) {
          let sum = 0;
          for (let k = 0; k < rank; k++) sum += b.values[o * rank + k] * a.values[k * inDim + i];
          expected[o * inDim + i] = w[o * inDim + i] + scale * sum;
        }
      }
      let maxB = 0;
      for (const x of b.values) maxB = Math.max(maxB, Math.abs(x));
      expect(maxB, `${name}: B trained`).toBeGreaterThan(0);
      expect(relDiff(m, expected), name).toBeLessThan(1e-6);
    }
    expect(adapted).toBe(2 * 7);

    // With PyTorch here: the PEFT adapter applied by PEFT's definition (scripts/hf_reference_forward.py
    // --adapter: base_layer(x) + lora_B(lora_A(x)) * scaling) gives the merged model's logits.
    let python = true;
    try {
      torchPython();
    } catch {
      python = false;
    }
    if (python) {
      const vocab = (JSON.parse(readFileSync(join(base, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
      const tokens = [[1, 5, 9, 33, 7, 2, 250, 11], [4, 4, 100, 8, 3, 17, 60, vocab - 1]];
      const adapted = await referenceLogits(base, tokens, peftDir);
      const mergedLogits = await referenceLogits(mergedDir, tokens);
      expect(maxAbsDiff(adapted, mergedLogits)).toBeLessThan(1e-4);
    }
  }, 60_000);

  it('refuses --lora-targets that match no layer, naming the valid ones', async () => {
    const r = await runTrainer(['finetune', '--from', base, '--data', task, '--out', ws.out('bad'), ...FT, '--lora-rank', '8', '--lora-targets', 'q,c_fc']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/TRAINER_ERR_LORA_TARGET/);
    expect(r.stderr + r.stdout).toMatch(/q, k, v, o, gate, up, down/);
  }, 30_000);
});
