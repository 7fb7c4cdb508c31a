import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { BYTE_TOKENS, EOT_TEXT, MAX_VOCAB_SIZE } from './tokenizer-file.js';
import { BinaryHeap } from './internal/heap.js';
import { pairKey, pairLeft, pairRight } from './internal/pair-key.js';
import { GPT2_PATTERN, forEachPretoken } from './pretokenize.js';

export interface TrainBpeOptions {
  /** Final vocabulary size: 256 byte tokens + learned merges + 1 special token (<|endoftext|>). */
  vocabSize: number;
  /** Called after every merge with (merges learned so far, merges to learn). */
  onProgress?: (merges: number, total: number) => void;
}

/** A pair's count at the time it was pushed; stale when the count has changed since. */
interface PairEntry {
  key: number;
  count: number;
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

  // Word table: each unique pre-token as a mutable symbol array, with its weight (occurrences).
  const symbols: Int32Array[] = [];
  const lengths: number[] = [];
  const weights: number[] = [];
  const encoder = new TextEncoder();
  for (const [word, weight] of words) {
    symbols.push(Int32Array.from(encoder.encode(word)));
    lengths.push(symbols[symbols.length - 1].length);
    weights.push(weight);
  }

  // Pair statistics: total count per pair, and which words (may be stale/duplicated) contain it.
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < symbols.length; w++) {
    const s = symbols[w];
    for (let i = 0; i + 1 < lengths[w]; i++) {
      const key = pairKey(s[i], s[i + 1]);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + weights[w]);
      addWord(pairWords, key, w);
    }
  }
  const heap = new BinaryHeap<PairEntry>((a, b) => a.count > b.count || (a.count === b.count && a.key < b.key));
  for (const [key, count] of pairCounts) heap.push({ key, count });

  const merges: Array<[number, number]> = [];
  const visitedAt = new Int32Array(symbols.length).fill(-1);
  while (merges.length < totalMerges) {
    const best = popValid(heap, pairCounts);
    if (best === undefined) {
      const supported = BYTE_TOKENS + merges.length + specialTokens.length;
      throw new TrainerError(DataErrorCode.TOKENIZER_VOCAB, `vocabSize ${vocabSize} is more than this corpus supports: it runs out of pairs to merge after ${merges.length} merges (vocabSize ${supported})`, {
        hint: `ask for vocabSize <= ${supported}, or train on a larger corpus`,
        details: { vocabSize, maxVocabSize: supported },
      });
    }
    const left = pairLeft(best.key);
    const right = pairRight(best.key);
    const newId = BYTE_TOKENS + merges.length;
    merges.push([left, right]);

    // Apply the merge to every word containing the pair, collecting pair-count deltas.
    const deltas = new Map<number, number>();
    for (const w of pairWords.get(best.key) ?? []) {
      if (visitedAt[w] === merges.length) continue;
      visitedAt[w] = merges.length;
      lengths[w] = mergeInWord(symbols[w], lengths[w], left, right, newId, weights[w], deltas);
      // Only pairs containing the new id can have appeared; index this word under them.
      const s = symbols[w];
      for (let i = 0; i + 1 < lengths[w]; i++) {
        if (s[i] === newId || s[i + 1] === newId) addWord(pairWords, pairKey(s[i], s[i + 1]), w);
      }
    }
    pairWords.delete(best.key);
    for (const [key, delta] of deltas) {
      if (delta === 0) continue;
      const count = (pairCounts.get(key) ?? 0) + delta;
      if (count > 0) {
        pairCounts.set(key, count);
        heap.push({ key, count });
      } else {
        pairCounts.delete(key);
        pairWords.delete(key);
      }
    }
    opts.onProgress?.(merges.length, totalMerges);
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

function addWord(index: Map<number, number[]>, key: number, word: number): void {
  const list = index.get(key);
  if (list === undefined) index.set(key, [word]);
  else if (list[list.length - 1] !== word) list.push(word);
}

/** Pops heap entries until one matches the pair's current count; undefined when none is left. */
function popValid(heap: BinaryHeap<PairEntry>, pairCounts: Map<number, number>): PairEntry | undefined {
  for (;;) {
    const entry = heap.pop();
    if (entry === undefined) return undefined;
    if (pairCounts.get(entry.key) === entry.count) return entry;
  }
}

/**
 * Replaces every non-overlapping (left, right) in `s[0 .. length)`, scanning left to right, by
 * `newId`, in place, and returns the new length. Adds (weight * change) of every adjacent pair's
 * count to `deltas`.
 */
function mergeInWord(
  s: Int32Array,
  length: number,
  left: number,
  right: number,
  newId: number,
  weight: number,
  deltas: Map<number, number>,
): number {
  let found = false;
  for (let i = 0; i + 1 < length; i++) {
    if (s[i] === left && s[i + 1] === right) {
      found = true;
      break;
    }
  }
  if (!found) return length; // stale index entry: the pair was merged away by an earlier merge
  const bump = (a: number, b: number, d: number): void => {
    const key = pairKey(a, b);
    deltas.set(key, (deltas.get(key) ?? 0) + d);
  };
  for (let i = 0; i + 1 < length; i++) bump(s[i], s[i + 1], -weight);
  let out = 0;
  for (let i = 0; i < length; i++) {
    if (i + 1 < length && s[i] === left && s[i + 1] === right) {
      s[out++] = newId;
      i++;
    } else {
      s[out++] = s[i];
    }
  }
  for (let i = 0; i + 1 < out; i++) bump(s[i], s[i + 1], weight);
  return out;
}
