import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { DataErrorCode } from '@trainer/data';
import { TrainerError } from '@trainer/errors';

/**
 * Input and output of `trainer tokenizer encode` / `decode`: a .jsonl file is read line by line
 * (one record per line, answered by one output line, in order); any other file is one text (or,
 * for decode, one sequence of whitespace-separated ids). Every problem names file:line and carries
 * TRAINER_ERR_TOKENIZER_INPUT.
 */

/** One unit of input: its line number (1-based; 0 for a whole plain file) and its value. */
export interface InputRecord<T> {
  line: number;
  value: T;
}

export function isJsonl(path: string): boolean {
  return path.toLowerCase().endsWith('.jsonl');
}

export function inputError(where: string, message: string, cause?: unknown): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_INPUT, `${where}: ${message}`, {
    hint: 'give a .jsonl file with one {"text": "..."} (encode) or {"ids": [1, 2]} (decode) object per line, or a UTF-8 text file',
    cause,
    details: { where },
  });
}

async function checkReadable(path: string): Promise<void> {
  const info = await stat(path).catch((err: unknown) => {
    throw inputError(path, `cannot read the input: ${(err as Error).message}`, err);
  });
  if (!info.isFile()) throw inputError(path, 'the input is not a file');
}

/** A field's value, or why it is refused. */
export type Checked<T> = { value: T } | { error: string };

/** The records of a .jsonl file: `field` of each line's object, checked by `check`. */
export async function* jsonlRecords<T>(path: string, field: string, check: (value: unknown) => Checked<T>): AsyncGenerator<InputRecord<T>> {
  await checkReadable(path);
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw inputError(`${path}:${line}`, `line is not valid JSON (${(err as Error).message})`, err);
    }
    const raw = typeof record === 'object' && record !== null && !Array.isArray(record) ? (record as Record<string, unknown>)[field] : undefined;
    const checked: Checked<T> = raw === undefined ? { error: `line has no field "${field}"` } : check(raw);
    if ('error' in checked) throw inputError(`${path}:${line}`, checked.error);
    yield { line, value: checked.value };
  }
}

/** A plain input file as one text (strict UTF-8). */
export async function plainText(path: string): Promise<string> {
  await checkReadable(path);
  const bytes = await readFile(path);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw inputError(path, 'the file is not valid UTF-8 text', err);
  }
}

export function checkText(value: unknown): Checked<string> {
  return typeof value === 'string' ? { value } : { error: `"text" is ${JSON.stringify(value)?.slice(0, 40)}, expected a string` };
}

export function checkIds(value: unknown): Checked<number[]> {
  if (!Array.isArray(value) || !value.every((id) => Number.isInteger(id) && id >= 0)) return { error: '"ids" must be an array of non-negative integers' };
  return { value: value as number[] };
}

/** Whitespace-separated ids of a plain file. */
export function parsePlainIds(path: string, text: string): number[] {
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  return words.map((w, i) => {
    if (!/^\d+$/.test(w)) throw inputError(path, `word ${i + 1} is ${JSON.stringify(w.slice(0, 40))}, expected a token id (a non-negative integer)`);
    return Number(w);
  });
}

/** Lines to stdout in large writes, waiting when the pipe is full (so a huge input never piles up in memory). */
export class LineWriter {
  private buffer: string[] = [];
  private size = 0;

  async line(text: string): Promise<void> {
    this.buffer.push(text, '\n');
    this.size += text.length + 1;
    if (this.size >= 1 << 20) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer.join('');
    this.buffer = [];
    this.size = 0;
    if (!process.stdout.write(chunk)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }
}
