import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { trainedRun } from './equivalence.js';
import { runTrainer } from './processes.js';
import { tinyWorkspace } from './tiny-run.js';

/**
 * The LoRA tests' setup: a tiny Llama (llama-nano narrowed to 2 blocks of width 32, 4 query heads
 * over 2 KV heads, SwiGLU 64) pretrained for 2 steps and exported as a Hugging Face folder (the
 * --from of every fine-tune), and a task file of six examples.
 */
const LLAMA = ['--model', 'llama-nano', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--ffn-hidden', '64', '--steps', '2', '--eval-every', '2'];
export const FT = ['--backend', 'wasm', '--steps', '3', '--global-batch', '4', '--lr', '1e-2', '--warmup-steps', '1', '--eval-every', '3', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '7'];
export const LORA = ['--lora-rank', '4', '--lora-alpha', '8', '--lora-targets', 'q,k,v,o,gate,up,down'];

export function loraWorkspace() {
  const ws = tinyWorkspace();
  const task = join(ws.dir, 'task.jsonl');
  const base = ws.out('hf');
  return {
    ws, task, base,
    /** Pretrains and exports the base (beforeAll). */
    async prepare(): Promise<void> {
      const pairs = [['The whale', ' swam past the ship'], ['Call me', ' Ishmael'], ['The sea was', ' calm'], ['A harpoon', ' flew and missed'], ['The crew sang', ' songs of home'], ['the wind', ' rose']];
      writeFileSync(task, pairs.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n');
      const pretrained = await trainedRun(ws, 'pretrained', 1, LLAMA);
      const r = await runTrainer(['export', pretrained.out, '--out', base]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
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
