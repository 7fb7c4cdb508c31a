import type { BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import type { ChatMessage, ChatTemplate } from './chat-template.js';

/**
 * Chat examples: a task line `{"messages": [{"role", "content"}, ...]}` rendered with the
 * model's chat template, the loss on the assistant turns only (Hugging Face TRL's
 * assistant-only loss).
 *
 * Where an assistant turn is in the rendered text (TRL's prefix approach): for assistant message
 * i, the conversation before it rendered with add_generation_prompt=true ends where the turn's
 * content starts, and the conversation up to and including it rendered with
 * add_generation_prompt=false ends where the turn ends (its end-of-turn token, e.g. ChatML's
 * `<|im_end|>\n`, is trained, as TRL does). Both must be prefixes of the whole conversation's
 * rendering; a template that renders a conversation's beginning differently is refused.
 *
 * The text is tokenized piece by piece, split at the turn boundaries (there the templates put a
 * special token or a newline, where the tokenizer splits anyway), so each token is wholly inside
 * or outside an assistant turn. Special tokens in the text (the template's `<|im_start|>`,
 * `eos_token`) become their ids, as transformers' apply_chat_template(tokenize=True) does, with
 * trainer's own tokenizers too.
 */
export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;

export interface ChatExample {
  messages: ChatMessage[];
  /** The messages before the last assistant turn, as JSON: the key of the held-out split. */
  prompt: string;
  /** 1-based line in the file, for error messages. */
  line: number;
}

function chatError(code: string, where: string, what: string, hint: string): TrainerError {
  return new TrainerError(code, `${where}: ${what}`, { hint });
}

const FORMAT_HINT = 'a chat line is {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]}';

/** The {"messages": [...]} object of one line (`where` = `file:line`). */
export function chatExample(v: { messages?: unknown }, line: number, where: string): ChatExample {
  const { messages } = v;
  if (!Array.isArray(messages) || messages.length === 0) throw chatError('TRAINER_ERR_CHAT_FORMAT', where, '"messages" is not a non-empty array', FORMAT_HINT);
  const out: ChatMessage[] = messages.map((m: unknown, i) => {
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw chatError('TRAINER_ERR_CHAT_FORMAT', where, `message ${i} is not a JSON object`, FORMAT_HINT);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string') throw chatError('TRAINER_ERR_CHAT_FORMAT', where, `message ${i} has no string "role"`, FORMAT_HINT);
    if (!(CHAT_ROLES as readonly string[]).includes(role)) {
      throw chatError('TRAINER_ERR_CHAT_ROLE', where, `message ${i} has the unknown role ${JSON.stringify(role)}`, `use one of the roles ${CHAT_ROLES.join(', ')} (rename e.g. "human"/"gpt" to "user"/"assistant")`);
    }
    if (typeof content !== 'string') throw chatError('TRAINER_ERR_CHAT_FORMAT', where, `message ${i} (${role}) has no string "content"`, FORMAT_HINT);
    return { role, content };
  });
  const last = out.map((m) => m.role).lastIndexOf('assistant');
  if (last < 0) throw chatError('TRAINER_ERR_CHAT_NO_ASSISTANT', where, 'the conversation has no assistant turn (nothing to learn)', 'add the assistant\'s reply as a {"role": "assistant", "content": ...} message, or drop the line');
  return { messages: out, prompt: JSON.stringify(out.slice(0, last)), line };
}

/** [start, end) character ranges of the assistant turns in `text`, the whole conversation's rendering. */
export function assistantSpans(template: ChatTemplate, messages: readonly ChatMessage[], where: string): { text: string; spans: Array<[number, number]> } {
  const render = (upTo: number, generationPrompt: boolean): string => {
    try {
      return template.render(messages.slice(0, upTo), generationPrompt);
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${where}: the chat template failed to render the conversation (${err instanceof Error ? err.message : String(err)})`, {
        cause: err,
        hint: 'the template refuses this conversation (e.g. roles out of the order it expects): fix the line, or the chat_template in tokenizer_config.json',
      });
    }
  };
  const text = render(messages.length, false);
  const spans: Array<[number, number]> = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = render(i, true);
    const through = render(i + 1, false);
    if (!text.startsWith(before) || !text.startsWith(through) || through.length < before.length) {
      throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${where}: the chat template renders the conversation up to assistant message ${i} differently from the start of the whole conversation, so the assistant turn cannot be located`, {
        hint: 'use a chat (instruct) template that renders each turn the same whatever follows it and honours add_generation_prompt (e.g. ChatML); a base model\'s template may append a header to every rendering',
      });
    }
    if (through.length > before.length) spans.push([before.length, through.length]);
  });
  return { text, spans };
}

/** Token ids of a chat example and, per id, whether it is trained (1: inside an assistant turn). */
export function encodeChat(e: ChatExample, template: ChatTemplate, tokenizer: BpeTokenizer, where: string): { ids: number[]; trained: number[] } {
  const { text, spans } = assistantSpans(template, e.messages, where);
  const ids: number[] = [];
  const trained: number[] = [];
  const piece = (from: number, to: number, inTurn: boolean): void => {
    if (to <= from) return;
    for (const id of tokenizer.encode(text.slice(from, to), { allowSpecial: true })) { // as apply_chat_template(tokenize=True): special tokens matched
      ids.push(id);
      trained.push(inTurn ? 1 : 0);
    }
  };
  let at = 0;
  for (const [start, end] of spans) {
    piece(at, start, false);
    piece(start, end, true);
    at = end;
  }
  piece(at, text.length, false);
  return { ids, trained };
}
