import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { mergeWord } from '../internal/bpe-merge.js';
import { pairKey } from '../internal/pair-key.js';
import { GPT2_PATTERN } from '../pretokenize.js';

/**
 * OpenAI's GPT-2 vocabulary as a BpeTokenizer, built from js-tiktoken's rank file (for the
 * differential test against js-tiktoken and for an equal-vocabulary benchmark).
 *
 * tiktoken stores ranked byte strings, not merges. Rank r >= 256 is recovered as a merge by
 * encoding its bytes with the merges before it: that yields exactly two tokens, its parts. Ids
 * then coincide for merges (256 + r) and eot (50256); byte tokens are permuted in tiktoken.
 */
export function gpt2FromTiktokenRanks(): { tokenizer: BpeTokenizer; toTiktokenId: (id: number) => number } {
  const byRank: Uint8Array[] = [];
  for (const line of gpt2Ranks.bpe_ranks.split('\n').filter(Boolean)) {
    const [, offset, ...tokens] = line.split(' ');
    tokens.forEach((b64, i) => (byRank[Number(offset) + i] = new Uint8Array(Buffer.from(b64, 'base64'))));
  }
  const byteRank = new Array<number>(256);
  for (let r = 0; r < 256; r++) byteRank[byRank[r][0]] = r;
  const ranks = new Map<number, number>();
  const merges: Array<[number, number]> = [];
  for (let r = 256; r < byRank.length; r++) {
    const parts = mergeWord(byRank[r], ranks);
    if (parts.length !== 2) throw new Error(`GPT-2 rank ${r} does not split into two earlier tokens`);
    merges.push([parts[0], parts[1]]);
    ranks.set(pairKey(parts[0], parts[1]), r - 256);
  }
  const tokenizer = new BpeTokenizer({ merges, specialTokens: ['<|endoftext|>'], pattern: GPT2_PATTERN });
  return { tokenizer, toTiktokenId: (id) => (id < 256 ? byteRank[id] : id) };
}
