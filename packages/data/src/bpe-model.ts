import type { AddedToken } from './added-tokens.js';
import type { HfComponent, HfTokenizerJson } from './hf-tokenizer-json.js';
import type { MergeIds } from './internal/bpe-merge.js';
import { BYTE_TOKENS, EOT_TEXT, type TokenizerFile, type TokenizerSpec, parseTokenizerFile, toTokenizerFile, tokenizerHash } from './tokenizer-file.js';

/** What BpeTokenizer.toJSON gives: trainer's own file, or a Hugging Face tokenizer.json. */
export type TokenizerJson = TokenizerFile | HfTokenizerJson;

/**
 * The Hugging Face components of a loaded tokenizer.json, as plain data (they travel to the
 * threads of `trainer data prepare` in BpeThreadForm and are built there again).
 */
export interface HfPipelineSpec {
  /** Applied to the text between raw-matched added tokens (normalizers.ts); null: none. */
  normalizer: HfComponent | null;
  /** Run when the byte-level fast path (`pattern`, `addPrefixSpace`) does not describe the pre-tokenizer (pre-tokenizers.ts); null: fast path. */
  preTokenizer: HfComponent | null;
  /** decoders.ts; a lone ByteLevel decodes on the fast path (token bytes). */
  decoder: HfComponent | null;
  /** The special tokens `addSpecialTokens` puts around a text (post-processor.ts). */
  postProcessor: HfComponent | null;
  /** Merges start from characters (SentencePiece-style BPE: '▁' for spaces, `<0xXX>` byte fallback) instead of UTF-8 bytes. */
  charLevel: boolean;
  /** A character outside the vocabulary becomes its `<0xXX>` byte tokens. */
  byteFallback: boolean;
  /** The unknown token's id (-1: none; unknown characters are then dropped, as Hugging Face). */
  unkId: number;
  /** Consecutive unknown characters give one unknown token. */
  fuseUnk: boolean;
  /** A Unigram model instead of BPE: each piece's score (log probability), by id (unigram-model.ts). */
  unigramScores?: number[];
}

/**
 * A byte-level BPE tokenizer as encode and decode use it, whatever file it came from: trainer's
 * own (bytes are ids 0..255, merge r makes id 256 + r, then the special tokens) or a Hugging Face
 * tokenizer.json / GPT-2 vocab.json + merges.txt (ids as the file gives them).
 *
 * Encoding: cut added tokens out of the text (raw pass, then normalize the rest, then normalized
 * pass), lead each remaining piece with a space when `addPrefixSpace`, split it into words with
 * `pattern` (or `hf.preTokenizer`), and merge each word's UTF-8 bytes (or, `hf.charLevel`, its
 * characters with byte fallback).
 */
export interface BpeModel {
  /** merges[r] = [left, right]: the ids of the pair that merge r joins. */
  merges: Array<[number, number]>;
  /** Ids of bytes and merge results; undefined for trainer's layout (byte b = id b, merge r = 256 + r). */
  ids: MergeIds | undefined;
  /** tokenBytes[id]: the bytes a token decodes to; undefined where no token has that id. */
  tokenBytes: Array<Uint8Array | undefined>;
  /** 1 + the largest id. */
  vocabSize: number;
  /** Special and other added tokens, matched in text before pre-tokenization. */
  addedTokens: AddedToken[];
  /** The document separator's id. */
  eotToken: number;
  /** Pre-tokenization regex source (flags 'gu'), or null: each piece of text is one word. */
  pattern: string | null;
  /** Hugging Face ByteLevel `add_prefix_space`: a piece not starting with ' ' gets one in front. */
  addPrefixSpace: boolean;
  /** Hugging Face components beyond byte-level BPE's fast path; undefined for trainer's own files. */
  hf: HfPipelineSpec | undefined;
  /** Token text -> id of the model's vocabulary (char-level models look characters up in it); undefined for byte-level. */
  vocab: ReadonlyMap<string, number> | undefined;
  /** Hugging Face BPE `ignore_merges`: a word that is itself in the vocabulary (byte-level text -> id) is that token. */
  wholeWords: ReadonlyMap<string, number> | undefined;
  /** EncodeOptions.allowSpecial when not given: false for trainer (user text cannot inject an eot), true for Hugging Face (as it does). */
  allowSpecialByDefault: boolean;
  /** SHA-256 (hex) of the JSON form. */
  hash: string;
  /** A fresh copy of the JSON form (fromJSON of it gives the same tokenizer and hash). */
  toJSON(): TokenizerJson;
}

/** The model of one of trainer's own tokenizers (validated like a loaded file). */
export function modelFromTrainerSpec(spec: TokenizerSpec): BpeModel {
  const hash = tokenizerHash(spec);
  return modelFromCheckedSpec(parseTokenizerFile(toTokenizerFile(spec, hash)), hash);
}

/**
 * modelFromTrainerSpec for a spec already validated (parseTokenizerFile) whose content hash is
 * `hash`: the same model without validating and hashing the spec again (load time).
 */
export function modelFromCheckedSpec(spec: TokenizerSpec, hash: string): BpeModel {
  const file = toTokenizerFile(spec, hash);
  const encoder = new TextEncoder();
  const tokenBytes: Uint8Array[] = [];
  for (let b = 0; b < BYTE_TOKENS; b++) tokenBytes.push(Uint8Array.of(b));
  for (const [left, right] of spec.merges) {
    const a = tokenBytes[left];
    const bytes = new Uint8Array(a.length + tokenBytes[right].length);
    bytes.set(a);
    bytes.set(tokenBytes[right], a.length);
    tokenBytes.push(bytes);
  }
  for (const text of spec.specialTokens) tokenBytes.push(encoder.encode(text));
  const addedTokens = Object.entries(file.specialTokens).map(([content, id]) => ({
    id, content, special: true, singleWord: false, lstrip: false, rstrip: false, normalized: false,
  }));
  return {
    merges: spec.merges.map(([a, b]) => [a, b]),
    ids: undefined,
    tokenBytes,
    vocabSize: file.vocabSize,
    addedTokens,
    eotToken: file.specialTokens[EOT_TEXT],
    pattern: spec.pattern,
    addPrefixSpace: false,
    hf: undefined,
    vocab: undefined,
    wholeWords: undefined,
    allowSpecialByDefault: false,
    hash,
    toJSON: () => toTokenizerFile(spec, hash),
  };
}
