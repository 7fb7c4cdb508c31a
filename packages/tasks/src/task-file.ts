import { readFile, stat, writeFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { chatExample } from './chat-task.js';
import type { FinetuneExample } from './task-batches.js';

/**
 * A task file: JSON Lines, one example per line, `{"prompt": "...", "completion": "..."}` (other
 * fields are ignored, blank lines skipped). Fine-tuning learns to continue each prompt with its
 * completion; evaluation generates a completion for each prompt and compares it with the given
 * one(s): lines with the same prompt are that prompt's references.
 */
export interface TaskExample {
  prompt: string;
  completion: string;
  /** 1-based line in the file, for error messages. */
  line: number;
}

/** Task files above this size are refused (named limit, like the corpus limits). */
export const TASK_MAX_FILE_BYTES = 256 * 2 ** 20;

function formatError(where: string, what: string): TrainerError {
  return new TrainerError('TRAINER_ERR_TASK_FORMAT', `${where}: ${what}`, {
    hint: 'every line of a task file is a JSON object with a non-empty string "prompt" and a non-empty string "completion" (trainer finetune also takes chat lines: {"messages": [{"role", "content"}, ...]})',
  });
}

/** Each non-blank line of JSON Lines as a parsed value, with its 1-based line number. */
export function jsonLines(text: string, name: string, badLine: (where: string, what: string) => TrainerError = formatError): Array<{ value: unknown; line: number }> {
  const lines: Array<{ value: unknown; line: number }> = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (err) {
      throw badLine(`${name}:${line}`, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw badLine(`${name}:${line}`, 'not a JSON object');
    lines.push({ value: v, line });
  });
  return lines;
}

/** One {"prompt", "completion"} object of line `line` (`where` = `file:line` for errors). */
export function completionExample(v: object, line: number, where: string): TaskExample {
  const { prompt, completion } = v as { prompt?: unknown; completion?: unknown };
  if (typeof prompt !== 'string') throw formatError(where, prompt === undefined ? 'no "prompt" field' : '"prompt" is not a string');
  if (typeof completion !== 'string') throw formatError(where, completion === undefined ? 'no "completion" field' : '"completion" is not a string');
  if (!prompt) throw formatError(where, '"prompt" is empty (the model needs a context to continue)');
  if (!completion) throw formatError(where, '"completion" is empty (nothing to learn or compare)');
  return { prompt, completion, line };
}

/** Parses task JSON Lines; `name` labels errors (`task.jsonl:12: ...`). */
export function parseTaskJsonl(text: string, name: string): TaskExample[] {
  const examples = jsonLines(text, name).map(({ value, line }) => completionExample(value as object, line, `${name}:${line}`));
  if (!examples.length) {
    throw new TrainerError('TRAINER_ERR_TASK_EMPTY', `${name} holds no example`, { hint: 'write one {"prompt": ..., "completion": ...} object per line' });
  }
  return examples;
}

/** A task file's text (TRAINER_ERR_TASK_NOT_FOUND / _TOO_LARGE), read whole. */
export async function readTaskText(path: string, opts: { maxBytes?: number } = {}): Promise<string> {
  const max = opts.maxBytes ?? TASK_MAX_FILE_BYTES;
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error('not a file');
    size = s.size;
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_TASK_NOT_FOUND', `task file ${path} does not exist or is not a file`, { cause: err, hint: 'pass a .jsonl file of {"prompt", "completion"} lines' });
  }
  if (size > max) {
    throw new TrainerError('TRAINER_ERR_TASK_TOO_LARGE', `task file ${path} has ${size} bytes, above the limit of ${max}`, { hint: 'split the file, or sample fewer examples' });
  }
  return readFile(path, 'utf8');
}

export async function loadTaskFile(path: string, opts: { maxBytes?: number } = {}): Promise<TaskExample[]> {
  return parseTaskJsonl(await readTaskText(path, opts), path);
}

/**
 * A fine-tuning file: each line {"prompt", "completion"} or {"messages": [...]} (a chat
 * conversation, chat-task.ts); both may be mixed.
 */
export function parseFinetuneJsonl(text: string, name: string): FinetuneExample[] {
  const examples = jsonLines(text, name).map(({ value, line }): FinetuneExample => {
    const where = `${name}:${line}`;
    if ('messages' in (value as object)) return { kind: 'chat', ...chatExample(value as { messages?: unknown }, line, where) };
    return { kind: 'completion', ...completionExample(value as object, line, where) };
  });
  if (!examples.length) {
    throw new TrainerError('TRAINER_ERR_TASK_EMPTY', `${name} holds no example`, { hint: 'write one {"prompt": ..., "completion": ...} or {"messages": [...]} object per line' });
  }
  return examples;
}

export async function loadFinetuneFile(path: string, opts: { maxBytes?: number } = {}): Promise<FinetuneExample[]> {
  return parseFinetuneJsonl(await readTaskText(path, opts), path);
}

export async function writeTaskFile(path: string, examples: ReadonlyArray<Pick<TaskExample, 'prompt' | 'completion'>>): Promise<void> {
  await writeFile(path, examples.map((e) => JSON.stringify({ prompt: e.prompt, completion: e.completion })).join('\n') + '\n');
}

/** Groups examples by prompt, in first-seen order: each prompt with all its reference completions. */
export function groupByPrompt(examples: readonly TaskExample[]): Array<{ prompt: string; references: string[] }> {
  const byPrompt = new Map<string, string[]>();
  for (const e of examples) {
    const refs = byPrompt.get(e.prompt);
    if (refs) refs.push(e.completion);
    else byPrompt.set(e.prompt, [e.completion]);
  }
  return [...byPrompt].map(([prompt, references]) => ({ prompt, references }));
}

/**
 * A stable 32-bit hash of a string for deterministic splits: FNV-1a over the UTF-16 code units,
 * then murmur3's finalizer (FNV alone leaves the high bits of similar short strings correlated).
 */
export function stableHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A deterministic held-out split by prompt: an example is held out when the hash of
 * (salt, prompt) falls below `fraction`, so every example of one prompt lands on the same side,
 * whatever the file's order.
 */
export function splitByPrompt<T extends { prompt: string }>(examples: readonly T[], fraction: number, salt = 'val'): { train: T[]; heldOut: T[] } {
  const train: T[] = [];
  const heldOut: T[] = [];
  for (const e of examples) (stableHash(`${salt}\u0000${e.prompt}`) / 2 ** 32 < fraction ? heldOut : train).push(e);
  return { train, heldOut };
}
