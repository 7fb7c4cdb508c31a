import { readFile, stat, writeFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';

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
    hint: 'every line of a task file is a JSON object with a non-empty string "prompt" and a non-empty string "completion"',
  });
}

/** Parses task JSON Lines; `name` labels errors (`task.jsonl:12: ...`). */
export function parseTaskJsonl(text: string, name: string): TaskExample[] {
  const examples: TaskExample[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (err) {
      throw formatError(`${name}:${line}`, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw formatError(`${name}:${line}`, 'not a JSON object');
    const { prompt, completion } = v as { prompt?: unknown; completion?: unknown };
    if (typeof prompt !== 'string') throw formatError(`${name}:${line}`, prompt === undefined ? 'no "prompt" field' : '"prompt" is not a string');
    if (typeof completion !== 'string') throw formatError(`${name}:${line}`, completion === undefined ? 'no "completion" field' : '"completion" is not a string');
    if (!prompt) throw formatError(`${name}:${line}`, '"prompt" is empty (the model needs a context to continue)');
    if (!completion) throw formatError(`${name}:${line}`, '"completion" is empty (nothing to learn or compare)');
    examples.push({ prompt, completion, line });
  });
  if (!examples.length) {
    throw new TrainerError('TRAINER_ERR_TASK_EMPTY', `${name} holds no example`, { hint: 'write one {"prompt": ..., "completion": ...} object per line' });
  }
  return examples;
}

export async function loadTaskFile(path: string, opts: { maxBytes?: number } = {}): Promise<TaskExample[]> {
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
  return parseTaskJsonl(await readFile(path, 'utf8'), path);
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
