import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { GPT2_TOKENIZER_JSON } from '../bench/gpt2-files.js';
import { modelFromTrainerSpec } from '../bpe-model.js';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { trainBpe } from '../bpe-train.js';
import type { HfTokenizerJson } from '../hf-tokenizer-json.js';
import { parseTokenizerFile } from '../tokenizer-file.js';
import { mobyChapters } from './test-fixtures.js';

/** What a tokenizer thread gets: the main thread's tokenizer as a thread form, copied as postMessage copies it. */
function inThread(tokenizer: BpeTokenizer): BpeTokenizer {
  return BpeTokenizer.fromThreadForm(structuredClone(tokenizer.threadForm()));
}

const TEXTS = [
  ...mobyChapters(3),
  '', ' ', '  x', "it's I'll've", '123 3.14159', '😀 東京と世界 e\u0301 ﬁ ﬁsh fish  <pad> x<pad>', 'a'.repeat(800), 'text<|endoftext|>more <|endoftext|>',
];

function expectSameTokenizer(copy: BpeTokenizer, original: BpeTokenizer): void {
  expect(copy.hash).toBe(original.hash);
  expect(copy.vocabSize).toBe(original.vocabSize);
  expect(copy.eotToken).toBe(original.eotToken);
  expect(copy.specialTokens).toEqual(original.specialTokens);
  expect(copy.pattern).toBe(original.pattern);
  for (const text of TEXTS) {
    expect(copy.encode(text)).toEqual(original.encode(text));
    expect(copy.encode(text, { allowSpecial: true })).toEqual(original.encode(text, { allowSpecial: true }));
    expect(copy.decode(original.encode(text))).toBe(original.decode(original.encode(text)));
  }
}

describe('BpeTokenizer.threadForm: the tokenizer the threads of `trainer data prepare` rebuild', () => {
  it("encodes and decodes as trainer's own tokenizer", () => {
    const original = trainBpe(mobyChapters(8), { vocabSize: 400 });
    expectSameTokenizer(inThread(original), original);
  });

  it("encodes as GPT-2's tokenizer.json (foreign ids), with normalization, added tokens and ignore_merges", async () => {
    const json = JSON.parse(await readFile(GPT2_TOKENIZER_JSON, 'utf8')) as HfTokenizerJson;
    const gpt2 = BpeTokenizer.fromJSON(json);
    expectSameTokenizer(inThread(gpt2), gpt2);
    const edited = structuredClone(json);
    edited.normalizer = { type: 'NFKC' };
    edited.added_tokens?.push({ id: 50257, content: 'ﬁsh', normalized: true, special: false }, { id: 50258, content: '<pad>', special: true, lstrip: true });
    edited.model.ignore_merges = true;
    const other = BpeTokenizer.fromJSON(edited);
    expectSameTokenizer(inThread(other), other);
  });

  it('has no JSON form: save the original', () => {
    const copy = inThread(trainBpe(mobyChapters(2), { vocabSize: 280 }));
    expect(() => copy.toJSON()).toThrow(/thread form/);
  });
});

describe('BpeTokenizer.fromJSON of a trainer tokenizer file (checked once, for load time)', () => {
  it('gives the tokenizer that modelFromTrainerSpec builds: same hash, JSON form, ids and token bytes', () => {
    const file = JSON.parse(JSON.stringify(trainBpe(mobyChapters(8), { vocabSize: 400 }).toJSON())) as unknown;
    const loaded = BpeTokenizer.fromJSON(file);
    const reference = new BpeTokenizer(modelFromTrainerSpec(parseTokenizerFile(file)));
    expectSameTokenizer(loaded, reference);
    expect(loaded.toJSON()).toEqual(reference.toJSON());
    expect(loaded.merges).toEqual(reference.merges);
    const allIds = Array.from({ length: reference.vocabSize }, (_, id) => id);
    expect(loaded.decodeBytes(allIds)).toEqual(reference.decodeBytes(allIds));
    expect(() => BpeTokenizer.fromJSON({ ...(file as object), hash: '0'.repeat(64) })).toThrow(/hash/);
  });
});
