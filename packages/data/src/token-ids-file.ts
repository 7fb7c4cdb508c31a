import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';

export interface LoadTokenIdsOptions {
  /** When given, every id must be below it (the model's vocabulary size). */
  vocabSize?: number;
}

const HINT = 'the file must be a JSON array of token-id sequences, e.g. [[464, 2068, 7586], [50256, 40]]';

/**
 * Reads a JSON array of token-id sequences (for `trainer eval --token-ids FILE`). Every sequence
 * must be a non-empty array of non-negative integers (below vocabSize when given); the first bad
 * element is named by its index, e.g. `[3][17]`.
 */
export async function loadTokenIdsFile(path: string, opts: LoadTokenIdsOptions = {}): Promise<number[][]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TrainerError(DataErrorCode.TOKEN_FILE_NOT_FOUND, `cannot read token-ids file ${path}: ${(err as Error).message}`, { hint: 'check the path', cause: err, details: { path } });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TrainerError(DataErrorCode.TOKEN_IDS_FORMAT, `token-ids file ${path} is not valid JSON: ${(err as Error).message}`, { hint: HINT, cause: err, details: { path } });
  }
  return parseTokenIds(value, path, opts);
}

/** Validates already-parsed token-id sequences (see loadTokenIdsFile). */
export function parseTokenIds(value: unknown, source: string, opts: LoadTokenIdsOptions = {}): number[][] {
  const fail = (where: string, message: string): TrainerError =>
    new TrainerError(DataErrorCode.TOKEN_IDS_FORMAT, `${source}${where}: ${message}`, { hint: HINT, details: { source, where } });
  if (!Array.isArray(value)) throw fail('', 'expected an array of sequences');
  if (value.length === 0) throw fail('', 'contains no sequence');
  const limit = opts.vocabSize ?? Number.MAX_SAFE_INTEGER;
  return value.map((seq: unknown, i) => {
    if (!Array.isArray(seq)) throw fail(`[${i}]`, `expected an array of token ids, got ${JSON.stringify(seq)?.slice(0, 40)}`);
    if (seq.length === 0) throw fail(`[${i}]`, 'sequence is empty');
    seq.forEach((id: unknown, j) => {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw fail(`[${i}][${j}]`, `${JSON.stringify(id)} is not a non-negative integer`);
      if (id >= limit) throw fail(`[${i}][${j}]`, `token id ${id} is not below vocabSize ${limit}`);
    });
    return seq as number[];
  });
}
