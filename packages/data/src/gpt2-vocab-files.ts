import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import type { HfAddedToken, HfTokenizerJson } from './hf-tokenizer-json.js';
import { isRecord } from './internal/is-record.js';
import { EOT_TEXT } from './tokenizer-file.js';

/** Options of GPT-2's slow tokenizer (transformers' GPT2Tokenizer), as tokenizer_config.json gives them. */
export interface Gpt2VocabOptions {
  /** Lead the text with a space (GPT2Tokenizer `add_prefix_space`); default false. */
  addPrefixSpace?: boolean;
  /** Special token texts (bos, eos, unk, pad, ...), each in vocab.json; '<|endoftext|>' is one whenever vocab.json has it. */
  specialTokens?: readonly string[];
}

/**
 * The Hugging Face tokenizer.json equivalent to GPT-2's `vocab.json` + `merges.txt` (OpenAI ship
 * them as `encoder.json` + `vocab.bpe`), as transformers' GPT2Tokenizer reads them and its
 * converter to a fast tokenizer writes them: ids from vocab.json, merge ranks in file order,
 * ByteLevel pre-tokenizer and decoder, special tokens matched in text. merges.txt: one "left right"
 * pair per line; "#version" lines and empty lines are skipped.
 */
export function tokenizerJsonFromGpt2Files(vocab: unknown, mergesText: string, opts: Gpt2VocabOptions = {}): HfTokenizerJson {
  if (!isRecord(vocab) || !Object.values(vocab).every((id) => Number.isInteger(id))) {
    throw new TrainerError(DataErrorCode.TOKENIZER_FORMAT, 'vocab.json refused: expected an object mapping token text to integer id', {
      hint: 'give the vocab.json (or encoder.json) of a GPT-2 style tokenizer, with merges.txt (or vocab.bpe) beside it',
    });
  }
  const merges: string[] = [];
  mergesText.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length === 0 || line.startsWith('#version')) return;
    if (line.split(' ').length !== 2) {
      throw new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `merges.txt refused: line ${i + 1} is ${JSON.stringify(line)}, expected "left right"`, {
        hint: 'the file is damaged or is not a GPT-2 merges.txt: download it again',
      });
    }
    merges.push(line);
  });
  const specials = new Set(opts.specialTokens ?? []);
  if (Object.hasOwn(vocab, EOT_TEXT)) specials.add(EOT_TEXT);
  const addedTokens = [...specials].map((content): HfAddedToken => {
    if (!Object.hasOwn(vocab, content)) {
      throw new TrainerError(DataErrorCode.TOKENIZER_UNSUPPORTED, `the special token ${JSON.stringify(content)} is not in vocab.json`, {
        hint: 'special tokens outside vocab.json (added after training) are not supported from vocab.json + merges.txt: use the model\'s tokenizer.json',
        details: { component: `special token ${content}` },
      });
    }
    return { id: vocab[content] as number, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: opts.addPrefixSpace ?? false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens.sort((a, b) => a.id - b.id),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false,
      vocab: vocab as Record<string, number>,
      merges,
    },
  };
}
