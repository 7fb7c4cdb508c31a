import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { beforeAll, describe, expect, it } from 'vitest';
import { gpt2FromTiktokenRanks } from './bench/gpt2-vocab.js';
import { loadCorpus } from './corpus.js';
import { randomString, seededRandom } from './internal/test-text.js';

/**
 * Differential test against an independent implementation: OpenAI's GPT-2 vocabulary, loaded into
 * our BpeTokenizer, must encode exactly like js-tiktoken (the JS port of tiktoken) does.
 */
describe('GPT-2 vocabulary: BpeTokenizer vs js-tiktoken', () => {
  let ours: ReturnType<typeof gpt2FromTiktokenRanks>;
  let reference: Tiktoken;
  beforeAll(() => {
    ours = gpt2FromTiktokenRanks();
    reference = new Tiktoken(gpt2Ranks);
  });

  it('has GPT-2 layout: 50000 merges, eot 50256', () => {
    expect(ours.tokenizer.vocabSize).toBe(50257);
    expect(ours.tokenizer.eotToken).toBe(50256);
  });

  it('encodes all of Moby Dick to the same ids', async () => {
    const corpus = await loadCorpus('moby-dick');
    let tokens = 0;
    for (const doc of corpus.documents) {
      const expected = reference.encode(doc);
      expect(ours.tokenizer.encode(doc).map(ours.toTiktokenId)).toEqual(expected);
      tokens += expected.length;
    }
    expect(tokens).toBeGreaterThan(290_000);
  });

  it('encodes random awkward strings to the same ids', () => {
    const rand = seededRandom(2024);
    for (let trial = 0; trial < 1000; trial++) {
      const text = randomString(rand, 30).replaceAll('<|endoftext|>', '<|eot|>'); // tiktoken refuses it by default
      expect(ours.tokenizer.encode(text).map(ours.toTiktokenId), JSON.stringify(text)).toEqual(reference.encode(text));
    }
  });
});
