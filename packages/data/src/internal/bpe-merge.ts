import { BinaryHeap } from './heap.js';
import { pairKey } from './pair-key.js';

/** Heap keys pack (rank, position): rank * 2^32 + position, exact below 2^53 for rank < 2^21. */
const POSITION_BASE = 2 ** 32;

/**
 * Token ids of a vocabulary whose ids are not trainer's layout (bytes 0..255, merge r = 256 + r),
 * e.g. GPT-2's vocab.json or a Hugging Face tokenizer.json.
 */
export interface MergeIds {
  /** byteIds[b]: id of the one-byte token of byte b. */
  readonly byteIds: ArrayLike<number>;
  /** mergedIds[r]: id of the token that merge r makes. */
  readonly mergedIds: ArrayLike<number>;
}

/**
 * Applies BPE merges to one pre-token's bytes, exactly as GPT-2's encoder does: repeatedly merge
 * the adjacent pair with the lowest merge rank (all of its occurrences, left to right).
 *
 * Rather than rescanning the word after every merge (O(n^2)), the symbols form a linked list and
 * candidate pairs sit in a min-heap keyed by (rank, position), so a long pre-token (a megabyte of
 * digits or spaces) costs O(n log n). Equivalent to the rescanning loop because a merge only
 * creates pairs containing the new token, whose ranks are all higher than the merge just made.
 *
 * It is also Hugging Face tokenizers' algorithm (`Word::merge_all`), including its staleness rule:
 * a popped pair is applied when the pair now at its position still makes the same token. With
 * trainer's layout that means the same rank; in a foreign vocabulary two merges may make one token.
 *
 * @param ranks pairKey(left, right) -> merge rank r (the pair becomes token 256 + r, or ids.mergedIds[r])
 * @param ids the vocabulary's ids when they are not trainer's layout
 */
export function mergeWord(bytes: Uint8Array, ranks: ReadonlyMap<number, number>, ids?: MergeIds): number[] {
  const byteIds = ids?.byteIds;
  if (bytes.length < 2) return byteIds ? Array.from(bytes, (b) => byteIds[b]) : Array.from(bytes);
  return mergeSymbols(byteIds ? Int32Array.from(bytes, (b) => byteIds[b]) : Int32Array.from(bytes), ranks, ids?.mergedIds);
}

/**
 * mergeWord from any starting symbols (token ids): a word's bytes for byte-level BPE, its
 * characters (or their byte-fallback tokens) for SentencePiece-style BPE. `symbol` is overwritten.
 *
 * @param mergedIds mergedIds[r]: the id merge r makes; undefined for trainer's layout (256 + r)
 */
export function mergeSymbols(symbol: Int32Array, ranks: ReadonlyMap<number, number>, mergedIds?: ArrayLike<number>): number[] {
  const n = symbol.length;
  if (n < 2) return Array.from(symbol);
  const madeBy = (rank: number): number => (mergedIds ? mergedIds[rank] : 256 + rank);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const alive = new Uint8Array(n).fill(1);
  const heap = new BinaryHeap<number>((a, b) => a < b);
  const pushPair = (pos: number): void => {
    if (pos < 0 || next[pos] < 0) return;
    const rank = ranks.get(pairKey(symbol[pos], symbol[next[pos]]));
    if (rank !== undefined) heap.push(rank * POSITION_BASE + pos);
  };
  for (let i = 0; i + 1 < n; i++) pushPair(i);

  for (let entry = heap.pop(); entry !== undefined; entry = heap.pop()) {
    const rank = Math.floor(entry / POSITION_BASE);
    const pos = entry % POSITION_BASE;
    const right = next[pos];
    // Stale when the left symbol was merged away or the pair at pos no longer makes this token.
    if (!alive[pos] || right < 0) continue;
    const current = ranks.get(pairKey(symbol[pos], symbol[right]));
    if (current === undefined || (current !== rank && madeBy(current) !== madeBy(rank))) continue;
    symbol[pos] = madeBy(rank);
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    pushPair(prev[pos]);
    pushPair(pos);
  }

  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(symbol[i]);
  return out;
}
