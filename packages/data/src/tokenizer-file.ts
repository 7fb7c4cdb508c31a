import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { sha256Hex } from './internal/hash.js';
import { isRecord } from './internal/is-record.js';
import { KNOWN_PATTERNS } from './pretokenize.js';

/** The `format` field of every tokenizer file this package writes. */
export const TOKENIZER_FORMAT = 'trainer-bpe';
/** The tokenizer file version this build writes and reads. */
export const TOKENIZER_FORMAT_VERSION = 1;
/** Ids 0..255 are the raw bytes. */
export const BYTE_TOKENS = 256;
/** The document separator special token. */
export const EOT_TEXT = '<|endoftext|>';
/** Largest vocabulary a tokenizer may have (ids must fit the pair packing of training/encoding). */
export const MAX_VOCAB_SIZE = 1 << 20;

/**
 * On-disk tokenizer, version 1. Token ids: 0..255 bytes; 256 + r the result of merges[r]; then
 * the special tokens. `hash` is the SHA-256 of the content (see tokenizerHash) and is checked on load.
 */
export interface TokenizerFile {
  format: typeof TOKENIZER_FORMAT;
  version: typeof TOKENIZER_FORMAT_VERSION;
  vocabSize: number;
  /** Pre-tokenization regex source (applied with flags 'gu'). */
  pattern: string;
  /** merges[r] = [left, right]: the pair that becomes token 256 + r. */
  merges: Array<[number, number]>;
  /** Special token text -> id; ids follow the merges. */
  specialTokens: Record<string, number>;
  hash: string;
}

/** What defines a tokenizer: everything else (ids, vocabSize, hash) is derived from it. */
export interface TokenizerSpec {
  merges: ReadonlyArray<readonly [number, number]>;
  /** Special token texts, in id order (the first gets id 256 + merges.length). */
  specialTokens: readonly string[];
  pattern: string;
}

/** Stable content hash: SHA-256 (hex) of the canonical JSON of the defining fields. */
export function tokenizerHash(spec: TokenizerSpec): string {
  return sha256Hex(
    JSON.stringify({
      format: TOKENIZER_FORMAT,
      version: TOKENIZER_FORMAT_VERSION,
      pattern: spec.pattern,
      merges: spec.merges,
      specialTokens: spec.specialTokens,
    }),
  );
}

export function toTokenizerFile(spec: TokenizerSpec, hash: string): TokenizerFile {
  const specialTokens: Record<string, number> = {};
  spec.specialTokens.forEach((text, i) => {
    specialTokens[text] = BYTE_TOKENS + spec.merges.length + i;
  });
  return {
    format: TOKENIZER_FORMAT,
    version: TOKENIZER_FORMAT_VERSION,
    vocabSize: BYTE_TOKENS + spec.merges.length + spec.specialTokens.length,
    pattern: spec.pattern,
    merges: spec.merges.map(([a, b]) => [a, b]),
    specialTokens,
    hash,
  };
}

/** JSON text of a tokenizer file, one merge per line so diffs and reviews stay readable. */
export function formatTokenizerFile(file: TokenizerFile): string {
  const merges = file.merges.map(([a, b]) => `    [${a}, ${b}]`).join(',\n');
  return [
    '{',
    `  "format": ${JSON.stringify(file.format)},`,
    `  "version": ${file.version},`,
    `  "vocabSize": ${file.vocabSize},`,
    `  "hash": ${JSON.stringify(file.hash)},`,
    `  "pattern": ${JSON.stringify(file.pattern)},`,
    `  "specialTokens": ${JSON.stringify(file.specialTokens)},`,
    `  "merges": [${merges.length > 0 ? `\n${merges}\n  ` : ''}]`,
    '}',
    '',
  ].join('\n');
}

function formatError(message: string, hint = 'the file is damaged or was not written by trainer: retrain it with `trainer tokenizer train`'): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `tokenizer file refused: ${message}`, { hint });
}

/**
 * Validates a parsed trainer tokenizer file and returns its spec. Foreign files (a Hugging Face
 * tokenizer.json here too: BpeTokenizer.fromJSON sends those to hf-tokenizer-json.ts), other
 * versions, and any internal inconsistency are refused with TRAINER_ERR_TOKENIZER_FORMAT; a hash
 * mismatch means the file was edited or damaged.
 */
export function parseTokenizerFile(obj: unknown): TokenizerSpec {
  if (!isRecord(obj)) throw formatError(`expected a JSON object, got ${Array.isArray(obj) ? 'an array' : typeof obj}`);
  if (obj.format !== TOKENIZER_FORMAT) {
    const huggingFace = isRecord(obj.model) && typeof obj.model.type === 'string';
    throw formatError(
      `format is ${JSON.stringify(obj.format)}, expected "${TOKENIZER_FORMAT}"${huggingFace ? ' (this looks like a Hugging Face tokenizer.json)' : ''}`,
      'trainer reads only its own tokenizer files: train one with `trainer tokenizer train --vocab N`',
    );
  }
  if (obj.version !== TOKENIZER_FORMAT_VERSION) {
    const newer = typeof obj.version === 'number' && obj.version > TOKENIZER_FORMAT_VERSION;
    throw formatError(
      `version ${JSON.stringify(obj.version)} is not supported (this build reads version ${TOKENIZER_FORMAT_VERSION})`,
      newer ? 'the file was written by a newer trainer: upgrade trainer' : 'retrain the tokenizer with this version of trainer',
    );
  }
  if (typeof obj.pattern !== 'string' || !KNOWN_PATTERNS.has(obj.pattern)) {
    throw formatError(`unknown pre-tokenization pattern ${JSON.stringify(obj.pattern)}`, 'this build knows only the GPT-2 pattern: retrain the tokenizer with this version of trainer');
  }
  const merges = parseMerges(obj.merges);
  const specialTokens = parseSpecialTokens(obj.specialTokens, BYTE_TOKENS + merges.length);
  const vocabSize = BYTE_TOKENS + merges.length + specialTokens.length;
  if (obj.vocabSize !== vocabSize) throw formatError(`vocabSize is ${JSON.stringify(obj.vocabSize)} but the merges and special tokens make ${vocabSize}`);
  const spec: TokenizerSpec = { merges, specialTokens, pattern: obj.pattern };
  const hash = tokenizerHash(spec);
  if (obj.hash !== hash) throw formatError(`content hash ${JSON.stringify(obj.hash)} does not match the content (${hash}): the file was edited or damaged`);
  return spec;
}

function parseMerges(value: unknown): Array<[number, number]> {
  if (!Array.isArray(value)) throw formatError('"merges" must be an array of [left, right] id pairs');
  if (BYTE_TOKENS + value.length >= MAX_VOCAB_SIZE) throw formatError(`${value.length} merges exceed the maximum vocabulary of ${MAX_VOCAB_SIZE}`);
  const seen = new Set<string>();
  return value.map((pair: unknown, r): [number, number] => {
    const limit = BYTE_TOKENS + r; // a merge may only use bytes and earlier merges
    const ok = Array.isArray(pair) && pair.length === 2 && pair.every((id) => Number.isInteger(id) && id >= 0 && id < limit);
    if (!ok) throw formatError(`merges[${r}] is ${JSON.stringify(pair)}, expected [left, right] with ids in [0, ${limit})`);
    const key = `${pair[0]},${pair[1]}`;
    if (seen.has(key)) throw formatError(`merges[${r}] repeats the pair [${key}]`);
    seen.add(key);
    return [pair[0] as number, pair[1] as number];
  });
}

function parseSpecialTokens(value: unknown, firstId: number): string[] {
  if (!isRecord(value)) throw formatError('"specialTokens" must be an object mapping token text to id');
  const entries = Object.entries(value).sort((a, b) => Number(a[1]) - Number(b[1]));
  entries.forEach(([text, id], i) => {
    if (id !== firstId + i || text.length === 0) {
      throw formatError(`special token ${JSON.stringify(text)} has id ${JSON.stringify(id)}, expected consecutive ids from ${firstId}`);
    }
  });
  if (!entries.some(([text]) => text === EOT_TEXT)) throw formatError(`the special token ${EOT_TEXT} is missing`);
  return entries.map(([text]) => text);
}
