import type { AddedToken } from './added-tokens.js';
import type { BpeModel } from './bpe-model.js';
import { BYTE_LEVEL_CHARS, byteLevelToBytes } from './byte-level-alphabet.js';
import { buildDecoder } from './decoders.js';
import { malformed, unsupported } from './hf-component-errors.js';
import { sha256Hex } from './internal/hash.js';
import { isRecord } from './internal/is-record.js';
import { type Normalizer, buildNormalizer } from './normalizers.js';
import { buildPostProcessor } from './post-processor.js';
import { buildPreTokenizer, byteLevelFastPath, hasByteLevel } from './pre-tokenizers.js';
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
 * A Hugging Face `tokenizer.json` (tokenizers' serialization, version "1.0"). Loaded: model BPE
 * (byte-level, or SentencePiece-style on characters with `byte_fallback` / `unk_token` /
 * `fuse_unk`; merges as "a b" strings or ["a", "b"] pairs; `ignore_merges`), the normalizers of
 * normalizers.ts, the pre-tokenizers of pre-tokenizers.ts, the post-processors of
 * post-processor.ts (used only for `addSpecialTokens`), the decoders of decoders.ts, and added
 * tokens with their options. Ignored: `truncation` and `padding` (they only act when batching
 * model inputs). Anything else is refused (TRAINER_ERR_TOKENIZER_UNSUPPORTED naming the component).
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
  if (modelType === 'Unigram') return modelFromHfUnigram(obj);
  if (modelType !== 'BPE') {
    throw unsupported(`model ${String(modelType ?? 'without a type')}`, 'only BPE models load (byte-level: GPT-2, Llama 3, Qwen; SentencePiece-style: Llama 2, Mistral, Gemma); and Unigram (SentencePiece\'s default); WordPiece (BERT) and WordLevel tokenizers do not');
  }
  checkBpeOptions(obj.model);
  const normalizer = obj.normalizer ?? null;
  const normalize = buildNormalizer(normalizer);
  const preTokenizer = obj.pre_tokenizer ?? null;
  const fastPath = byteLevelFastPath(preTokenizer);
  if (!fastPath) buildPreTokenizer(preTokenizer); // refuses unknown components now, not on first encode
  const charLevel = !hasByteLevel(preTokenizer);
  const decoder = obj.decoder ?? null;
  buildDecoder(decoder);
  const postProcessor = obj.post_processor ?? null;
  buildPostProcessor(postProcessor);

  const vocab = parseVocab(obj.model.vocab);
  const addedTokens = parseAddedTokens(obj.added_tokens ?? [], vocab);
  const { merges, mergedIds } = parseMerges(obj.model.merges, vocab);
  const byteIds = new Int32Array(256);
  if (!charLevel) {
    BYTE_LEVEL_CHARS.forEach((char, b) => {
      const id = vocab.get(char);
      if (id === undefined) {
        throw unsupported(`a vocabulary without the byte token ${JSON.stringify(char)} (byte 0x${b.toString(16).padStart(2, '0')})`, 'byte-level BPE needs all 256 byte tokens so that any text encodes; this file is not a complete byte-level vocabulary');
      }
      byteIds[b] = id;
    });
  }
  const unkToken = obj.model.unk_token;
  const unkId = typeof unkToken === 'string' ? vocab.get(unkToken) ?? -1 : -1;

  const tokenBytes = decodedTokens(vocab, addedTokens, normalize, charLevel);
  const text = JSON.stringify(obj);
  const hash = sha256Hex(text);
  return {
    merges,
    ids: { byteIds, mergedIds },
    tokenBytes,
    vocabSize: tokenBytes.length,
    addedTokens,
    eotToken: pickEot(addedTokens, vocab),
    pattern: fastPath ? fastPath.pattern : null,
    addPrefixSpace: fastPath?.addPrefixSpace ?? false,
    hf: {
      normalizer: normalizer as HfComponent | null,
      preTokenizer: fastPath ? null : (preTokenizer as HfComponent | null),
      decoder: decoder as HfComponent | null,
      postProcessor: postProcessor as HfComponent | null,
      charLevel,
      byteFallback: obj.model.byte_fallback === true,
      unkId,
      fuseUnk: obj.model.fuse_unk === true,
    },
    vocab: charLevel ? vocab : undefined,
    wholeWords: obj.model.ignore_merges === true ? vocab : undefined,
    allowSpecialByDefault: true,
    hash,
    toJSON: () => JSON.parse(text) as HfTokenizerJson,
  };
}

/**
 * A Unigram tokenizer.json (`model.vocab` as [piece, score] pairs, `unk_id`, `byte_fallback`): the
 * same pipeline as SentencePiece-style BPE (characters, normalizers, pre-tokenizers, decoders),
 * with the pieces chosen by Viterbi (unigram-model.ts) instead of merges.
 */
function modelFromHfUnigram(obj: HfTokenizerJson): BpeModel {
  const normalizer = obj.normalizer ?? null;
  const normalize = buildNormalizer(normalizer);
  const preTokenizer = obj.pre_tokenizer ?? null;
  buildPreTokenizer(preTokenizer);
  if (hasByteLevel(preTokenizer)) throw unsupported('Unigram with a ByteLevel pre-tokenizer', 'byte-level Unigram models are not implemented');
  buildDecoder(obj.decoder ?? null);
  buildPostProcessor(obj.post_processor ?? null);
  const list: unknown = obj.model.vocab;
  if (!Array.isArray(list) || !list.every((e) => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number')) {
    throw malformed('Unigram "model.vocab" must be an array of [piece, score] pairs');
  }
  const vocab = new Map<string, number>();
  (list as Array<[string, number]>).forEach(([piece], id) => {
    if (!vocab.has(piece)) vocab.set(piece, id);
  });
  const addedTokens = parseAddedTokens(obj.added_tokens ?? [], vocab);
  const unkId = typeof obj.model.unk_id === 'number' ? obj.model.unk_id : -1;
  const tokenBytes = decodedTokens(vocab, addedTokens, normalize, true);
  const text = JSON.stringify(obj);
  return {
    merges: [],
    ids: undefined,
    tokenBytes,
    vocabSize: tokenBytes.length,
    addedTokens,
    eotToken: pickEot(addedTokens, vocab),
    pattern: null,
    addPrefixSpace: false,
    hf: {
      normalizer: normalizer as HfComponent | null,
      preTokenizer: preTokenizer as HfComponent | null,
      decoder: (obj.decoder ?? null) as HfComponent | null,
      postProcessor: (obj.post_processor ?? null) as HfComponent | null,
      charLevel: true,
      byteFallback: obj.model.byte_fallback === true,
      unkId,
      fuseUnk: true,
      unigramScores: (list as Array<[string, number]>).map(([, score]) => score),
    },
    vocab,
    wholeWords: undefined,
    allowSpecialByDefault: true,
    hash: sha256Hex(text),
    toJSON: () => JSON.parse(text) as HfTokenizerJson,
  };
}

/**
 * The bytes each id decodes to, as Hugging Face decodes: a byte-level vocabulary token through
 * the ByteLevel decoder (all in the byte alphabet: those bytes; else its UTF-8), a character-level
 * one as its UTF-8 (the decoder chain then works on that text), an added token as its content's
 * UTF-8, normalized when the token is (Hugging Face normalizes such contents on load).
 */
function decodedTokens(vocab: ReadonlyMap<string, number>, addedTokens: readonly AddedToken[], normalize: Normalizer | undefined, charLevel: boolean): Array<Uint8Array | undefined> {
  const tokenBytes: Array<Uint8Array | undefined> = [];
  const encoder = new TextEncoder();
  for (const [text, id] of vocab) tokenBytes[id] = (charLevel ? undefined : byteLevelToBytes(text)) ?? encoder.encode(text);
  for (const token of addedTokens) {
    const content = token.normalized && normalize ? normalize(token.content) : token.content;
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
      throw unsupported(`BPE ${key} ${JSON.stringify(value)}`, 'BPE with a subword prefix or word suffix (original BPE, CLIP) is not implemented');
    }
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

