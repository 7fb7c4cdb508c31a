/**
 * Chat data and packing, measured: 2000 conversations (1-4 questions each about a word of the CMU
 * Pronouncing Dictionary, half with a system prompt) rendered with Qwen2.5's published ChatML
 * template and tokenized with GPT-2's published tokenizer.json plus ChatML's two tokens; then
 * the share of computed positions that are not padding, one example per row vs packed, per row
 * length and micro-batch. `pnpm --filter @trainer/tasks bench`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { BpeTokenizer } from '@trainer/data';
import { ChatTemplate, chatTemplateSpecFromConfig } from '../chat-template.js';
import { loadCmudict } from '../cmudict-task.js';
import { packingStats } from '../packing.js';
import { encodeFinetune } from '../task-batches.js';
import { parseFinetuneJsonl } from '../task-file.js';

const require = createRequire(import.meta.url);
const published = (pkg: string, file: string): Record<string, unknown> => JSON.parse(readFileSync(require.resolve(`@lenml/${pkg}/models/${file}`), 'utf8')) as Record<string, unknown>;

const tokenizerJson = published('tokenizer-gpt2', 'tokenizer.json') as { added_tokens: object[] };
const added = (id: number, content: string): object => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
tokenizerJson.added_tokens.push(added(50257, '<|im_start|>'), added(50258, '<|im_end|>'));
const tokenizer = BpeTokenizer.fromJSON(tokenizerJson);
const template = new ChatTemplate(chatTemplateSpecFromConfig(published('tokenizer-qwen2_5', 'tokenizer_config.json'), 'qwen2.5')!);

const dict = Object.entries(loadCmudict());
let seed = 1;
const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const lines: string[] = [];
for (let i = 0; i < 2000; i++) {
  const messages: Array<{ role: string; content: string }> = rnd() < 0.5 ? [{ role: 'system', content: 'You give the CMU pronunciation of English words.' }] : [];
  for (let t = 1 + Math.floor(rnd() * 4); t > 0; t--) {
    const [word, phones] = dict[Math.floor(rnd() * dict.length)];
    messages.push({ role: 'user', content: `How do you pronounce "${word.toLowerCase()}"?` }, { role: 'assistant', content: phones });
  }
  lines.push(JSON.stringify({ messages }));
}
const started = performance.now();
const examples = encodeFinetune(parseFinetuneJsonl(lines.join('\n'), 'bench'), tokenizer, 4096, 'bench', template);
const ms = performance.now() - started;
const lengths = examples.map((e) => e.ids.length).sort((a, b) => a - b);
const trained = examples.reduce((a, e) => a + e.trainedTargets, 0) / examples.reduce((a, e) => a + e.ids.length, 0);
console.log(`${examples.length} conversations, ${lengths[0]}-${lengths[lengths.length - 1]} tokens (median ${lengths[lengths.length >> 1]}), rendered and tokenized in ${ms.toFixed(0)} ms; ${(100 * trained).toFixed(1)}% of tokens in assistant turns`);
console.log('| row length | micro-batch | not padding, one per row | not padding, packed | examples per row |');
console.log('| --- | --- | --- | --- | --- |');
for (const seqLen of [lengths[lengths.length - 1], 256, 512]) {
  for (const microBatch of [8, 32]) {
    const one = packingStats(examples, seqLen, microBatch, false);
    const packed = packingStats(examples, seqLen, microBatch, true);
    console.log(`| ${seqLen} | ${microBatch} | ${(100 * one.nonPaddingShare).toFixed(1)}% | ${(100 * packed.nonPaddingShare).toFixed(1)}% | ${packed.examplesPerRow.toFixed(2)} |`);
  }
}
