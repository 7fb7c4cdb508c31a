import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import type { HfAddedToken, HfTokenizerJson } from './hf-tokenizer-json.js';
import { learnMerges } from './internal/learn-merges.js';
import { MAX_VOCAB_SIZE } from './tokenizer-file.js';

export interface TrainSentencePieceBpeOptions {
  /** Final vocabulary size: 3 special tokens + 256 byte tokens + characters + merges. */
  vocabSize: number;
  /** Share of character occurrences the character vocabulary covers; rarer characters are encoded as bytes. Default 0.9995 (SentencePiece's). */
  characterCoverage?: number;
  onProgress?: (merges: number, total: number) => void;
}

/** The space marker of SentencePiece: a word is '▁' + its text. */
const SPACE = '▁';
const SPECIALS = ['<unk>', '<s>', '</s>'] as const;
/** Ids of the special tokens, then of the 256 byte tokens `<0x00>`..`<0xFF>`. */
const FIRST_CHAR_ID = SPECIALS.length + 256;

/**
 * Learns a SentencePiece-style BPE tokenizer (as Llama 2's) and returns it as a Hugging Face
 * tokenizer.json: normalizer Prepend('▁') + Replace(' ' -> '▁'), no pre-tokenizer, BPE over
 * characters with byte fallback (`<0xXX>`) and `<unk>`, `<s>` added in front by the post-processor
 * template, decoder Replace('▁' -> ' '), ByteFallback, Fuse, Strip(1 leading space). `</s>` ends
 * documents.
 *
 * Training: the normalized text is cut before each '▁' into words (so no token spans two words);
 * the characters covering `characterCoverage` of all occurrences (ties to the lower code point)
 * become tokens, in order of frequency; then merges as trainBpe learns them.
 */
export function trainSentencePieceBpe(texts: Iterable<string>, opts: TrainSentencePieceBpeOptions): HfTokenizerJson {
  const { vocabSize } = opts;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < FIRST_CHAR_ID + 1 || vocabSize > MAX_VOCAB_SIZE) {
    throw new TrainerError(DataErrorCode.TOKENIZER_VOCAB, `vocabSize ${vocabSize} is out of range [${FIRST_CHAR_ID + 1}, ${MAX_VOCAB_SIZE}]`, {
      hint: `a SentencePiece-style vocabulary holds ${SPECIALS.length} special and 256 byte tokens before any character: ask for at least ${FIRST_CHAR_ID + 1} (8000 is a good start)`,
      details: { vocabSize },
    });
  }
  const words = new Map<string, number>();
  for (const text of texts) {
    if (text.length === 0) continue;
    for (const word of (SPACE + text.replaceAll(' ', SPACE)).split(/(?=▁)/u)) words.set(word, (words.get(word) ?? 0) + 1);
  }

  // Character vocabulary: most frequent first, until the coverage is reached or the vocabulary is full.
  const charCounts = new Map<string, number>();
  let total = 0;
  for (const [word, weight] of words) {
    for (const ch of word) {
      charCounts.set(ch, (charCounts.get(ch) ?? 0) + weight);
      total += weight;
    }
  }
  const byFrequency = [...charCounts].sort((a, b) => b[1] - a[1] || a[0].codePointAt(0)! - b[0].codePointAt(0)!);
  const coverage = opts.characterCoverage ?? 0.9995;
  const charIds = new Map<string, number>();
  let covered = 0;
  for (const [ch, count] of byFrequency) {
    if (FIRST_CHAR_ID + charIds.size >= vocabSize || (covered >= coverage * total && charIds.size > 0)) break;
    charIds.set(ch, FIRST_CHAR_ID + charIds.size);
    covered += count;
  }

  const symbols: Int32Array[] = [];
  const weights: number[] = [];
  for (const [word, weight] of words) {
    symbols.push(Int32Array.from([...word], (ch) => charIds.get(ch) ?? -1));
    weights.push(weight);
  }
  const firstMergeId = FIRST_CHAR_ID + charIds.size;
  const merges = learnMerges(symbols, weights, firstMergeId, vocabSize - firstMergeId, opts.onProgress);

  const vocab: Record<string, number> = {};
  const texts_: string[] = [...SPECIALS];
  for (let b = 0; b < 256; b++) texts_.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  texts_.push(...charIds.keys());
  const mergeStrings: string[] = []; // "left right", the form every Hugging Face version reads (tokens have no spaces: they are "▁")
  for (const [left, right] of merges) {
    mergeStrings.push(`${texts_[left]} ${texts_[right]}`);
    texts_.push(texts_[left] + texts_[right]);
  }
  // Distinct merges can make the same string (a+bc, ab+c): the vocabulary keeps its first id, and ids stay dense.
  let next = 0;
  for (const text of texts_) if (!Object.hasOwn(vocab, text)) vocab[text] = next++;
  const added: HfAddedToken[] = SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: mergeStrings },
  };
}
