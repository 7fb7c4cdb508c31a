import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { TrainerError } from '@trainer/errors';

/**
 * A model's chat template: the Jinja source of Hugging Face's `tokenizer_config.json`
 * (`chat_template`), rendered as transformers' `apply_chat_template(messages, tokenize=False)`
 * does, with `messages`, `bos_token`, `eos_token`, `add_generation_prompt` and the built-in
 * `raise_exception` (Hugging Face's own Jinja implementation, @huggingface/jinja).
 */
export interface ChatMessage {
  role: string;
  content: string;
}

/** What a job carries so every worker renders the same way (plain JSON). */
export interface ChatTemplateSpec {
  template: string;
  bosToken: string;
  eosToken: string;
}

export class ChatTemplate {
  private readonly compiled: Template;

  constructor(readonly spec: ChatTemplateSpec, where = 'chat_template') {
    try {
      this.compiled = new Template(spec.template);
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${where}: the chat template does not parse (${err instanceof Error ? err.message : String(err)})`, {
        cause: err,
        hint: 'fix chat_template in tokenizer_config.json (Jinja, as Hugging Face transformers reads it)',
      });
    }
  }

  /** The conversation as text; throws the template's own error (raise_exception, bad syntax at run time). */
  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    return this.compiled.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      bos_token: this.spec.bosToken,
      eos_token: this.spec.eosToken,
      add_generation_prompt: addGenerationPrompt,
    });
  }
}

/** A special token of tokenizer_config.json: a string, or an AddedToken object `{content, ...}`. */
function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return '';
}

/**
 * The chat template of a parsed tokenizer_config.json, or undefined when it has none. A list of
 * named templates (`[{name, template}]`) yields the one named "default", as transformers does.
 */
export function chatTemplateSpecFromConfig(config: unknown, where: string): ChatTemplateSpec | undefined {
  if (!config || typeof config !== 'object') return undefined;
  const c = config as Record<string, unknown>;
  let template = c.chat_template;
  if (Array.isArray(template)) {
    const named = template.find((t): t is { name: string; template: string } => !!t && typeof t === 'object' && (t as { name?: unknown }).name === 'default');
    if (!named || typeof named.template !== 'string') {
      throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${where}: chat_template is a list without a template named "default"`, { hint: 'name one of the templates "default" (the one used for training)' });
    }
    template = named.template;
  }
  if (template === undefined || template === null) return undefined;
  if (typeof template !== 'string') throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${where}: chat_template is neither a string nor a list of {name, template}`, { hint: 'write chat_template as Hugging Face does: a Jinja string' });
  return { template, bosToken: tokenText(c.bos_token), eosToken: tokenText(c.eos_token) };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${path} is not valid JSON`, { cause: err, hint: `fix or remove ${path}` });
  }
}

/**
 * The chat template of a Hugging Face folder, or undefined: `chat_template` of
 * tokenizer_config.json, else the files newer transformers save beside it (chat_template.jinja,
 * or chat_template.json's `chat_template`), with bos/eos from tokenizer_config.json.
 */
export async function readChatTemplate(dir: string): Promise<ChatTemplateSpec | undefined> {
  const configPath = join(dir, 'tokenizer_config.json');
  const configText = await readOptional(configPath);
  const config = configText === undefined ? {} : parseJson(configText, configPath);
  const inConfig = chatTemplateSpecFromConfig(config, configPath);
  if (inConfig) return inConfig;
  const jinja = await readOptional(join(dir, 'chat_template.jinja'));
  if (jinja !== undefined) return chatTemplateSpecFromConfig({ ...(config as object), chat_template: jinja }, join(dir, 'chat_template.jinja'));
  const jsonPath = join(dir, 'chat_template.json');
  const json = await readOptional(jsonPath);
  if (json === undefined) return undefined;
  const template = (parseJson(json, jsonPath) as { chat_template?: unknown } | null)?.chat_template;
  return chatTemplateSpecFromConfig({ ...(config as object), chat_template: template }, jsonPath);
}
