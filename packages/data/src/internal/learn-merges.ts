import { BinaryHeap } from './heap.js';
import { pairKey, pairLeft, pairRight } from './pair-key.js';

/** A pair's count at the time it was pushed; stale when the count has changed since. */
interface PairEntry {
  key: number;
  count: number;
}

/**
 * The BPE training loop: each step merges the most frequent adjacent pair (count summed over
 * word weights) into the next id (firstId + rank). Ties go to the smaller (left, right) id pair,
 * so the result depends only on the words. A negative symbol never pairs (a character left to
 * byte fallback). Returns fewer than `totalMerges` merges when the words run out of pairs.
 *
 * Cost: per merge only the words containing the merged pair are touched (pair -> words index),
 * and the best pair comes from a lazy max-heap. `symbols` are rewritten in place.
 */
export function learnMerges(symbols: Int32Array[], weights: readonly number[], firstId: number, totalMerges: number, onProgress?: (merges: number, total: number) => void): Array<[number, number]> {
  const lengths = symbols.map((s) => s.length);
  // Pair statistics: total count per pair, and which words (may be stale/duplicated) contain it.
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < symbols.length; w++) {
    const s = symbols[w];
    for (let i = 0; i + 1 < lengths[w]; i++) {
      if (s[i] < 0 || s[i + 1] < 0) continue;
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
    if (best === undefined) break;
    const left = pairLeft(best.key);
    const right = pairRight(best.key);
    const newId = firstId + merges.length;
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
        if ((s[i] === newId || s[i + 1] === newId) && s[i] >= 0 && s[i + 1] >= 0) addWord(pairWords, pairKey(s[i], s[i + 1]), w);
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
    onProgress?.(merges.length, totalMerges);
  }
  return merges;
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
    if (a < 0 || b < 0) return; // a symbol left to byte fallback never pairs
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
