/**
 * `trainer tokenizer train --type byte-bpe | sentencepiece-bpe` writes Hugging Face tokenizer.json
 * files: @huggingface/tokenizers (an independent implementation) must load them and encode and
 * decode exactly as our BpeTokenizer does with the same file.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { trainBpe } from './bpe-train.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { loadCorpus } from './corpus.js';
import type { HfTokenizerJson } from './hf-tokenizer-json.js';
import { byteLevelTokenizerJson } from './hf-tokenizer-writer.js';
import { UNICODE_EDGE_TEXTS, firstLines } from './internal/unicode-test-text.js';
import { trainSentencePieceBpe } from './sentencepiece-bpe-train.js';

async function trainingText(): Promise<string[]> {
  return (await loadCorpus('moby-dick')).documents.slice(0, 8);
}

function expectSameAsHuggingFace(json: HfTokenizerJson, texts: readonly string[]): BpeTokenizer {
  const ours = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(json)));
  const ref = new Tokenizer(JSON.parse(JSON.stringify(json)) as object, {});
  for (const text of texts) {
    for (const addSpecialTokens of [false, true]) {
      const expected = ref.encode(text, { add_special_tokens: addSpecialTokens }).ids;
      expect(ours.encode(text, { addSpecialTokens }), JSON.stringify(text)).toEqual(expected);
      if (expected.length > 0) expect(ours.decode(expected)).toBe(ref.decode(expected, { clean_up_tokenization_spaces: false }));
    }
  }
  return ours;
}

describe('tokenizers trained here, written as Hugging Face tokenizer.json', () => {
  it('byte-bpe: our trained tokenizer in GPT-2 layout encodes as before and as @huggingface/tokenizers', async () => {
    const docs = await trainingText();
    const trained = trainBpe(docs, { vocabSize: 1200 });
    const json = byteLevelTokenizerJson(trained);
    const texts = [...UNICODE_EDGE_TEXTS, ...firstLines(docs.slice(8), 300)];
    const loaded = expectSameAsHuggingFace(json, texts);
    expect(loaded.vocabSize).toBeLessThanOrEqual(1200);
    // Same tokens as the trainer file, with U+0085 / U+FEFF aside (Hugging Face's \s is Unicode White_Space, trainer's file keeps JavaScript's).
    for (const text of texts.filter((t) => !/[\u0085\ufeff]/u.test(t))) expect(loaded.decode(loaded.encode(text))).toBe(trained.decode(trained.encode(text)));
  });

  it('sentencepiece-bpe: Llama 2 layout (Prepend/Replace, byte fallback, <s> template) encodes and decodes as @huggingface/tokenizers', async () => {
    const docs = await trainingText();
    const json = trainSentencePieceBpe(docs, { vocabSize: 1500 });
    expect(Object.keys(json.model.vocab).length).toBe(1500);
    // U+FEFF as byte-fallback bytes: Rust's String::from_utf8 keeps it, the JavaScript port's TextDecoder drops it (see the decoders test).
    const texts = UNICODE_EDGE_TEXTS.filter((t) => !t.includes('\ufeff'));
    const ours = expectSameAsHuggingFace(json, [...texts, ...firstLines((await loadCorpus('moby-dick')).documents.slice(8), 300)]);
    expect(ours.encode('Call me Ishmael.', { addSpecialTokens: true })[0]).toBe(1);
    expect(ours.eotToken).toBe(2);
    // Rare characters (CJK, emoji) go to their bytes and come back.
    expect(ours.decode(ours.encode('東京 😀'))).toBe('東京 😀');
    // Streaming (generation): token by token gives the decoded text, a character split over byte tokens once whole.
    const ids = ours.encode(' Call me 東京 😀 Ishmael.', { addSpecialTokens: true });
    const stream = ours.createStreamDecoder();
    const pieces = ids.map((id) => stream.push([id]));
    expect(pieces.join('') + stream.flush()).toBe(ours.decode(ids));
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
  });
});
