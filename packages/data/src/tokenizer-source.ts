import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { type Gpt2VocabOptions, tokenizerJsonFromGpt2Files } from './gpt2-vocab-files.js';
import { isRecord } from './internal/is-record.js';

/** vocab.json's partner files, first found wins (Hugging Face's names, then OpenAI's). */
const MERGES_FILES = ['merges.txt', 'vocab.bpe'] as const;
const VOCAB_FILES = ['vocab.json', 'encoder.json'] as const;
/** tokenizer_config.json keys whose token GPT2Tokenizer treats as special. */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

const NOT_FOUND_HINT = 'give a tokenizer.json (from `trainer tokenizer train`, or a Hugging Face one), a GPT-2 vocab.json with merges.txt beside it, or a Hugging Face model folder';

/**
 * Reads what `--tokenizer PATH` names and returns its JSON, ready for BpeTokenizer.fromJSON:
 *
 * - a folder: its tokenizer.json, else its vocab.json + merges.txt (or encoder.json + vocab.bpe);
 * - a tokenizer.json: trainer's own file or a Hugging Face one, returned as parsed;
 * - a vocab.json (or encoder.json), or a merges.txt (or vocab.bpe): read with its partner beside
 *   it, plus tokenizer_config.json when there (`add_prefix_space`, special tokens), and turned
 *   into the equivalent Hugging Face tokenizer.json.
 *
 * Missing files give TRAINER_ERR_TOKENIZER_NOT_FOUND, unreadable JSON TRAINER_ERR_TOKENIZER_FORMAT.
 */
export async function readTokenizerJson(path: string): Promise<unknown> {
  const info = await stat(path).catch((err: unknown) => {
    throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `cannot read tokenizer file ${path}: ${(err as Error).message}`, {
      hint: NOT_FOUND_HINT,
      cause: err,
      details: { path },
    });
  });
  if (info.isDirectory()) return readTokenizerFolder(path);
  const name = basename(path);
  if (name === 'merges.txt' || name.endsWith('.bpe')) return readGpt2Files(await findBeside(path, VOCAB_FILES, 'vocab.json'), path);
  const obj = await readJson(path);
  if (isVocabMap(obj)) return readGpt2Files(path, await findBeside(path, MERGES_FILES, 'merges.txt'), obj);
  return obj;
}

async function readTokenizerFolder(dir: string): Promise<unknown> {
  const tokenizerJson = join(dir, 'tokenizer.json');
  if (await isFile(tokenizerJson)) return readJson(tokenizerJson);
  for (let i = 0; i < VOCAB_FILES.length; i++) {
    const vocab = join(dir, VOCAB_FILES[i]);
    const merges = join(dir, MERGES_FILES[i]);
    if ((await isFile(vocab)) && (await isFile(merges))) return readGpt2Files(vocab, merges);
  }
  throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `the folder ${dir} has no tokenizer.json, nor vocab.json and merges.txt`, {
    hint: NOT_FOUND_HINT,
    details: { path: dir },
  });
}

async function readGpt2Files(vocabPath: string, mergesPath: string, vocab?: unknown): Promise<unknown> {
  const vocabJson = vocab ?? (await readJson(vocabPath));
  const merges = await readFile(mergesPath, 'utf8').catch((err: unknown) => {
    throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `cannot read ${mergesPath}: ${(err as Error).message}`, { hint: NOT_FOUND_HINT, cause: err, details: { path: mergesPath } });
  });
  const configPath = join(dirname(vocabPath), 'tokenizer_config.json');
  const opts = (await isFile(configPath)) ? gpt2Options(await readJson(configPath)) : {};
  try {
    return tokenizerJsonFromGpt2Files(vocabJson, merges, opts);
  } catch (err) {
    if (!(err instanceof TrainerError)) throw err;
    throw new TrainerError(err.code, `${vocabPath} + ${basename(mergesPath)}: ${err.message}`, { hint: err.hint, cause: err, details: { path: vocabPath } });
  }
}

/** GPT2Tokenizer's options from a tokenizer_config.json (special tokens as strings or { content }). */
function gpt2Options(config: unknown): Gpt2VocabOptions {
  if (!isRecord(config)) return {};
  const specialTokens: string[] = [];
  for (const key of SPECIAL_TOKEN_KEYS) {
    const value = config[key];
    const content = isRecord(value) ? value.content : value;
    if (typeof content === 'string' && content.length > 0) specialTokens.push(content);
  }
  return { addPrefixSpace: config.add_prefix_space === true, specialTokens };
}

async function findBeside(path: string, names: readonly string[], expected: string): Promise<string> {
  for (const name of names) {
    const candidate = join(dirname(path), name);
    if (await isFile(candidate)) return candidate;
  }
  throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `${path} needs ${expected} beside it (looked for ${names.join(', ')} in ${dirname(path)})`, {
    hint: 'GPT-2 style tokenizers come as two files, vocab.json and merges.txt: put both in one folder',
    details: { path },
  });
}

/** vocab.json: a flat object of token -> integer id (a tokenizer file has a string "format" or an object "model"; GPT-2 has the tokens "format" and "model"). */
function isVocabMap(obj: unknown): obj is Record<string, number> {
  if (!isRecord(obj)) return false;
  const values = Object.values(obj);
  return values.length > 0 && values.every((id) => Number.isInteger(id));
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `cannot read tokenizer file ${path}: ${(err as Error).message}`, { hint: NOT_FOUND_HINT, cause: err, details: { path } });
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `tokenizer file ${path} is not valid JSON: ${(err as Error).message}`, {
      hint: 'the file is damaged or is not a tokenizer: retrain it with `trainer tokenizer train`, or download it again',
      cause: err,
      details: { path },
    });
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}
