import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { BYTE_TOKENS, EOT_TEXT, MAX_VOCAB_SIZE } from './tokenizer-file.js';
import { learnMerges } from './internal/learn-merges.js';
import { GPT2_PATTERN, forEachPretoken } from './pretokenize.js';

export interface TrainBpeOptions {
  /** Final vocabulary size: 256 byte tokens + learned merges + 1 special token (<|endoftext|>). */
  vocabSize: number;
  /** Called after every merge with (merges learned so far, merges to learn). */
  onProgress?: (merges: number, total: number) => void;
}

/**
 * Learns byte-level BPE merges from `texts` (GPT-2 style).
 *
 * Each text is split into pre-tokens; identical pre-tokens are counted once with a weight. Every
 * word starts as its UTF-8 bytes. Each step merges the most frequent adjacent pair (count summed
 * over word weights) into a new token id 256 + rank. Ties are broken by the smaller (left, right)
 * id pair, so the result depends only on the corpus: same texts => identical tokenizer anywhere.
 *
 * Cost: one pass over the text to count words, then per merge only the words containing the
 * merged pair are touched (pair -> words index), and the best pair comes from a lazy max-heap.
 */
export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): BpeTokenizer {
  const { vocabSize } = opts;
  const specialTokens = [EOT_TEXT];
  const minVocab = BYTE_TOKENS + specialTokens.length;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < minVocab || vocabSize > MAX_VOCAB_SIZE) {
    throw new TrainerError(DataErrorCode.TOKENIZER_VOCAB, `vocabSize ${vocabSize} is out of range [${minVocab}, ${MAX_VOCAB_SIZE}]`, {
      hint: `the vocabulary holds ${BYTE_TOKENS} byte tokens and ${specialTokens.length} special token(s), so ask for at least ${minVocab} (2048 is a good start for a small corpus)`,
      details: { vocabSize },
    });
  }
  const totalMerges = vocabSize - minVocab;
  const words = countWords(texts);

  const encoder = new TextEncoder();
  const symbols: Int32Array[] = [];
  const weights: number[] = [];
  for (const [word, weight] of words) {
    symbols.push(Int32Array.from(encoder.encode(word)));
    weights.push(weight);
  }
  const merges = learnMerges(symbols, weights, BYTE_TOKENS, totalMerges, opts.onProgress);
  if (merges.length < totalMerges) {
    const supported = BYTE_TOKENS + merges.length + specialTokens.length;
    throw new TrainerError(DataErrorCode.TOKENIZER_VOCAB, `vocabSize ${vocabSize} is more than this corpus supports: it runs out of pairs to merge after ${merges.length} merges (vocabSize ${supported})`, {
      hint: `ask for vocabSize <= ${supported}, or train on a larger corpus`,
      details: { vocabSize, maxVocabSize: supported },
    });
  }
  return new BpeTokenizer({ merges, specialTokens, pattern: GPT2_PATTERN });
}

/** Unique pre-tokens of all texts with their occurrence counts. */
function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  const pattern = new RegExp(GPT2_PATTERN, 'gu');
  for (const text of texts) {
    forEachPretoken(text, pattern, (word) => counts.set(word, (counts.get(word) ?? 0) + 1));
  }
  return counts;
}
