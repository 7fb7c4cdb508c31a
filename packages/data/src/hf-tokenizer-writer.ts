import { bytesToByteLevel } from './byte-level-alphabet.js';
import type { BpeTokenizer } from './bpe-tokenizer.js';
import type { HfAddedToken, HfTokenizerJson } from './hf-tokenizer-json.js';
import { BYTE_TOKENS, EOT_TEXT } from './tokenizer-file.js';

/**
 * One of trainer's own byte-level tokenizers (trainBpe) as a Hugging Face tokenizer.json that
 * Hugging Face tokenizers, transformers and transformers.js load: GPT-2's layout (ByteLevel
 * pre-tokenizer with the GPT-2 regex, BPE over the byte alphabet, ByteLevel decoder),
 * '<|endoftext|>' special. Ids are trainer's (byte b = b, merge r = 256 + r), except that a merge
 * whose bytes an earlier token already has reuses that token (a vocabulary maps each string once).
 */
export function byteLevelTokenizerJson(tokenizer: BpeTokenizer): HfTokenizerJson {
  const vocab: Record<string, number> = {};
  const textOf = (id: number): string => bytesToByteLevel(tokenizer.decodeBytes([id]));
  let next = 0;
  for (let b = 0; b < BYTE_TOKENS; b++) vocab[textOf(b)] = next++;
  const merges: string[] = []; // "left right": the form every version of Hugging Face tokenizers reads (no token has a space)
  tokenizer.merges.forEach(([left, right], r) => {
    merges.push(`${textOf(left)} ${textOf(right)}`);
    const text = textOf(BYTE_TOKENS + r);
    if (!Object.hasOwn(vocab, text)) vocab[text] = next++;
  });
  const eot: HfAddedToken = { id: next, content: EOT_TEXT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  vocab[EOT_TEXT] = next;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [eot],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}
