import { TrainerError } from '@trainer/errors';
import type { AddedToken } from './added-tokens.js';
import type { BpeModel, NormalizationForm } from './bpe-model.js';
import { BYTE_LEVEL_CHARS, byteLevelToBytes } from './byte-level-alphabet.js';
import { DataErrorCode } from './codes.js';
import { sha256Hex } from './internal/hash.js';
import { isRecord } from './internal/is-record.js';
import { HF_BYTE_LEVEL_PATTERN } from './pretokenize.js';
import { MAX_VOCAB_SIZE } from './tokenizer-file.js';

/** An added token as tokenizer.json lists it. */
export interface HfAddedToken {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/** A tokenizer.json component: `{ "type": "ByteLevel", ...options }`. */
export interface HfComponent {
  type: string;
  [option: string]: unknown;
}

/**
 * The parts of a Hugging Face `tokenizer.json` (tokenizers' serialization, version "1.0") that
 * this build reads. Loaded: model BPE (merges as "a b" strings or ["a", "b"] pairs, optional
 * `ignore_merges`), pre-tokenizer ByteLevel (`add_prefix_space`, `use_regex`), decoder ByteLevel,
 * normalizer none or NFC/NFD/NFKC/NFKD, added tokens with their options. Ignored, because they
 * only act when batching model inputs: `truncation`, `padding`, and the post-processor (it adds
 * special tokens around a sequence only for `add_special_tokens=True`; encode here is
 * `encode(text, add_special_tokens=False)`). Anything else is refused (TRAINER_ERR_TOKENIZER_UNSUPPORTED).
 */
export interface HfTokenizerJson {
  version?: string;
  added_tokens?: HfAddedToken[];
  normalizer?: HfComponent | null;
  pre_tokenizer?: HfComponent | null;
  post_processor?: HfComponent | null;
  decoder?: HfComponent | null;
  model: { type?: string; vocab: Record<string, number>; merges: Array<string | [string, string]>; [option: string]: unknown };
  [key: string]: unknown;
}

/** The document separator is the first of these that the tokenizer has (added tokens, then vocabulary). */
export const HF_EOT_CANDIDATES: readonly string[] = ['<|endoftext|>', '<|end_of_text|>', '</s>', '<eos>'];

const NORMALIZATION_FORMS: ReadonlySet<string> = new Set<NormalizationForm>(['NFC', 'NFD', 'NFKC', 'NFKD']);
/** Post-processors only add special tokens around sequences (add_special_tokens=True), which encode never does. */
const IGNORED_POST_PROCESSORS: ReadonlySet<string> = new Set(['ByteLevel', 'TemplateProcessing', 'RobertaProcessing', 'BertProcessing', 'Sequence']);

/** Whether `obj` has the shape of a Hugging Face tokenizer.json (a `model` object), before any validation. */
export function looksLikeHfTokenizerJson(obj: unknown): obj is HfTokenizerJson {
  return isRecord(obj) && isRecord(obj.model);
}

/**
 * Validates a parsed Hugging Face tokenizer.json and builds the model BpeTokenizer runs. Ids are
 * the file's. Malformed files give TRAINER_ERR_TOKENIZER_FORMAT, components this build does not
 * implement TRAINER_ERR_TOKENIZER_UNSUPPORTED naming the component.
 */
export function modelFromHfTokenizerJson(obj: unknown): BpeModel {
  if (!looksLikeHfTokenizerJson(obj)) throw malformed('expected an object with a "model" object');
  const modelType = obj.model.type ?? (Array.isArray(obj.model.merges) ? 'BPE' : undefined);
  if (modelType !== 'BPE') {
    throw unsupported(`model ${String(modelType ?? 'without a type')}`, 'only BPE models load (byte-level BPE: GPT-2, RoBERTa, GPT-J, Pythia); WordPiece (BERT) and Unigram (T5, ALBERT) tokenizers do not');
  }
  checkBpeOptions(obj.model);
  const normalization = parseNormalizer(obj.normalizer ?? null);
  const { addPrefixSpace, useRegex } = parsePreTokenizer(obj.pre_tokenizer ?? null);
  checkDecoder(obj.decoder ?? null);
  checkPostProcessor(obj.post_processor ?? null);

  const vocab = parseVocab(obj.model.vocab);
  const addedTokens = parseAddedTokens(obj.added_tokens ?? [], vocab);
  const { merges, mergedIds } = parseMerges(obj.model.merges, vocab);
  const byteIds = new Int32Array(256);
  BYTE_LEVEL_CHARS.forEach((char, b) => {
    const id = vocab.get(char);
    if (id === undefined) {
      throw unsupported(`a vocabulary without the byte token ${JSON.stringify(char)} (byte 0x${b.toString(16).padStart(2, '0')})`, 'byte-level BPE needs all 256 byte tokens so that any text encodes; this file is not a complete byte-level vocabulary');
    }
    byteIds[b] = id;
  });

  const tokenBytes = decodedTokens(vocab, addedTokens, normalization);
  const text = JSON.stringify(obj);
  const hash = sha256Hex(text);
  return {
    merges,
    ids: { byteIds, mergedIds },
    tokenBytes,
    vocabSize: tokenBytes.length,
    addedTokens,
    eotToken: pickEot(addedTokens, vocab),
    pattern: useRegex ? HF_BYTE_LEVEL_PATTERN : null,
    addPrefixSpace,
    normalization,
    wholeWords: obj.model.ignore_merges === true ? vocab : undefined,
    allowSpecialByDefault: true,
    hash,
    toJSON: () => JSON.parse(text) as HfTokenizerJson,
  };
}

/**
 * The bytes each id decodes to, as Hugging Face decodes: a vocabulary token through the ByteLevel
 * decoder (all in the byte alphabet: those bytes; else its UTF-8), an added token as its content's
 * UTF-8, normalized when the token is (Hugging Face normalizes such contents on load).
 */
function decodedTokens(vocab: ReadonlyMap<string, number>, addedTokens: readonly AddedToken[], normalization: readonly NormalizationForm[]): Array<Uint8Array | undefined> {
  const tokenBytes: Array<Uint8Array | undefined> = [];
  const encoder = new TextEncoder();
  for (const [text, id] of vocab) tokenBytes[id] = byteLevelToBytes(text) ?? encoder.encode(text);
  for (const token of addedTokens) {
    const content = token.normalized ? normalization.reduce((t, form) => t.normalize(form), token.content) : token.content;
    tokenBytes[token.id] = encoder.encode(content);
  }
  return tokenBytes;
}

function checkBpeOptions(model: HfTokenizerJson['model']): void {
  if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) {
    throw unsupported(`BPE dropout ${JSON.stringify(model.dropout)}`, 'dropout makes encoding random; set "dropout": null in the tokenizer.json to load it');
  }
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    const value = model[key];
    if (value !== undefined && value !== null && value !== '') {
      throw unsupported(`BPE ${key} ${JSON.stringify(value)}`, 'byte-level BPE has no subword prefix or suffix; this is a different kind of BPE tokenizer');
    }
  }
  if (model.byte_fallback === true) {
    throw unsupported('BPE byte_fallback', 'byte-fallback BPE (Llama 2, Mistral, with <0x..> tokens) is not byte-level BPE and does not load yet');
  }
}

function parseNormalizer(normalizer: unknown): NormalizationForm[] {
  if (normalizer === null) return [];
  if (isRecord(normalizer) && normalizer.type === 'Sequence' && Array.isArray(normalizer.normalizers)) {
    try {
      return normalizer.normalizers.flatMap(parseNormalizer);
    } catch {
      throw unsupported(describe('normalizer', normalizer), 'only Unicode normalizers (NFC, NFD, NFKC, NFKD) load; Lowercase, Strip, Replace, Prepend and others are not implemented');
    }
  }
  if (isRecord(normalizer) && typeof normalizer.type === 'string' && NORMALIZATION_FORMS.has(normalizer.type)) return [normalizer.type as NormalizationForm];
  throw unsupported(describe('normalizer', normalizer), 'only Unicode normalizers (NFC, NFD, NFKC, NFKD) load; Lowercase, Strip, Replace, Prepend and others are not implemented');
}

function parsePreTokenizer(pre: unknown): { addPrefixSpace: boolean; useRegex: boolean } {
  const single = isRecord(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 1 ? pre.pretokenizers[0] : pre;
  if (!isRecord(single) || single.type !== 'ByteLevel') {
    throw unsupported(describe('pre-tokenizer', pre), 'only the ByteLevel pre-tokenizer (GPT-2 regex) loads; Split + ByteLevel (Llama 3, Qwen), Metaspace and Whitespace pre-tokenizers do not yet');
  }
  // Hugging Face's defaults for options a file leaves out.
  return { addPrefixSpace: single.add_prefix_space !== false, useRegex: single.use_regex !== false };
}

function checkDecoder(decoder: unknown): void {
  if (!isRecord(decoder) || decoder.type !== 'ByteLevel') {
    throw unsupported(describe('decoder', decoder), 'byte-level BPE decodes with the ByteLevel decoder; a file with another one is not a byte-level tokenizer');
  }
}

function checkPostProcessor(post: unknown): void {
  if (post === null) return;
  const ok = isRecord(post) && typeof post.type === 'string' && IGNORED_POST_PROCESSORS.has(post.type);
  if (!ok || (post.type === 'Sequence' && !(Array.isArray(post.processors) && post.processors.every((p) => isRecord(p) && IGNORED_POST_PROCESSORS.has(String(p.type)))))) {
    throw unsupported(describe('post-processor', post), `known post-processors (${[...IGNORED_POST_PROCESSORS].join(', ')}) are accepted and ignored; this one is unknown`);
  }
}

/** Token text -> id; ids unique, below MAX_VOCAB_SIZE. */
function parseVocab(vocab: unknown): Map<string, number> {
  if (!isRecord(vocab)) throw malformed('"model.vocab" must be an object mapping token text to id');
  const map = new Map<string, number>();
  const taken = new Uint8Array(MAX_VOCAB_SIZE);
  for (const text of Object.keys(vocab)) {
    const id = vocab[text];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) {
      throw malformed(`vocabulary token ${JSON.stringify(text)} has id ${JSON.stringify(id)}, expected an integer in [0, ${MAX_VOCAB_SIZE})`);
    }
    if (taken[id]) {
      const other = [...map].find(([, i]) => i === id)?.[0];
      throw malformed(`vocabulary tokens ${JSON.stringify(other)} and ${JSON.stringify(text)} share id ${id}`);
    }
    taken[id] = 1;
    map.set(text, id);
  }
  return map;
}

/**
 * Merge r joins the pair (left, right) into the token left + right, all three in the vocabulary.
 * Returns the id pairs and the id each merge makes; a pair listed twice keeps its last rank (as
 * Hugging Face's merge map does).
 */
function parseMerges(merges: unknown, vocab: ReadonlyMap<string, number>): { merges: Array<[number, number]>; mergedIds: Int32Array } {
  if (!Array.isArray(merges)) throw malformed('"model.merges" must be an array of "left right" strings or [left, right] pairs');
  const pairs: Array<[number, number]> = [];
  const mergedIds = new Int32Array(merges.length);
  const idOf = (text: string, r: number): number => {
    const id = vocab.get(text);
    if (id === undefined) throw malformed(`merges[${r}] ${JSON.stringify(merges[r])}: ${JSON.stringify(text)} is not in the vocabulary`);
    return id;
  };
  for (let r = 0; r < merges.length; r++) {
    const merge: unknown = merges[r];
    let left: unknown;
    let right: unknown;
    if (typeof merge === 'string') {
      const space = merge.indexOf(' ');
      if (space >= 0 && merge.indexOf(' ', space + 1) < 0) [left, right] = [merge.slice(0, space), merge.slice(space + 1)];
    } else if (Array.isArray(merge) && merge.length === 2) [left, right] = merge as unknown[];
    if (typeof left !== 'string' || typeof right !== 'string') {
      throw malformed(`merges[${r}] is ${JSON.stringify(merge)}, expected "left right" or ["left", "right"]`);
    }
    pairs.push([idOf(left, r), idOf(right, r)]);
    mergedIds[r] = idOf(left + right, r);
  }
  return { merges: pairs, mergedIds };
}

/**
 * The added tokens, each with the id Hugging Face tokenizers gives it on load, which must be the
 * file's: it does not take the listed ids but re-adds the tokens in order, a token in the
 * vocabulary getting its vocabulary id and any other the next id after the vocabulary and the
 * added tokens before it. Files it writes always agree; one that does not is refused rather than
 * encoded with ids that differ from either the file or Hugging Face.
 */
function parseAddedTokens(list: unknown, vocab: ReadonlyMap<string, number>): AddedToken[] {
  if (!Array.isArray(list)) throw malformed('"added_tokens" must be an array');
  const idOfContent = new Map<string, number>();
  let maxId = -1;
  return list.map((t: unknown, i): AddedToken => {
    const flag = (name: string, fallback: boolean): boolean => {
      const v = isRecord(t) ? t[name] : undefined;
      if (v === undefined) return fallback;
      if (typeof v !== 'boolean') throw malformed(`added_tokens[${i}].${name} is ${JSON.stringify(v)}, expected true or false`);
      return v;
    };
    if (!isRecord(t) || typeof t.content !== 'string' || t.content.length === 0 || !Number.isInteger(t.id) || (t.id as number) < 0 || (t.id as number) >= MAX_VOCAB_SIZE) {
      throw malformed(`added_tokens[${i}] is ${JSON.stringify(t)}, expected { "id": integer, "content": non-empty string, ... }`);
    }
    const id = t.id as number;
    const expected = idOfContent.get(t.content) ?? vocab.get(t.content) ?? (maxId >= vocab.size ? maxId + 1 : vocab.size);
    if (id !== expected) {
      throw malformed(`added token ${JSON.stringify(t.content)} has id ${id}, but Hugging Face tokenizers gives it ${expected} (its vocabulary id, or the next id after the vocabulary and the added tokens before it)`);
    }
    idOfContent.set(t.content, id);
    maxId = Math.max(maxId, id);
    const special = flag('special', false);
    return {
      id, content: t.content, special,
      singleWord: flag('single_word', false), lstrip: flag('lstrip', false), rstrip: flag('rstrip', false),
      normalized: flag('normalized', !special), // Hugging Face's default: special tokens are not normalized
    };
  });
}

function pickEot(addedTokens: readonly AddedToken[], vocab: ReadonlyMap<string, number>): number {
  for (const text of HF_EOT_CANDIDATES) {
    const id = addedTokens.find((t) => t.content === text)?.id ?? vocab.get(text);
    if (id !== undefined) return id;
  }
  throw unsupported(`a tokenizer without an end-of-text token (none of ${HF_EOT_CANDIDATES.join(' ')})`, 'training separates documents with an end-of-text token: use a tokenizer that has one of these tokens');
}

/** "pre-tokenizer Sequence[Split, ByteLevel]" and the like, for messages. */
function describe(kind: string, component: unknown): string {
  if (component === null || component === undefined) return `${kind} none`;
  if (!isRecord(component)) return `${kind} ${JSON.stringify(component)}`;
  const inner = [component.normalizers, component.pretokenizers, component.processors, component.decoders].find(Array.isArray) as unknown[] | undefined;
  const parts = inner ? `[${inner.map((c) => (isRecord(c) ? String(c.type) : JSON.stringify(c))).join(', ')}]` : '';
  return `${kind} ${String(component.type)}${parts}`;
}

function unsupported(component: string, hint: string): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_UNSUPPORTED, `Hugging Face tokenizer.json: ${component} is not supported (this build loads byte-level BPE tokenizers)`, {
    hint,
    details: { component },
  });
}

function malformed(message: string): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `Hugging Face tokenizer.json refused: ${message}`, {
    hint: 'the file is damaged or was not written by Hugging Face tokenizers: download it again',
  });
}

