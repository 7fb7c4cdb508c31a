/**
 * Test helper: published tokenizers of open models, encoded and decoded by our BpeTokenizer and by
 * @huggingface/tokenizers (transformers.js's tokenizers, an independent implementation of
 * Hugging Face's), on Unicode edge cases and real text: the ids and decoded texts must be equal.
 *
 * The files: GPT-2, Llama 3 and Qwen 2.5 (byte-level BPE; Llama 3's and Qwen's Split regex has
 * `(?i:...)` groups) and Llama 2 / Mistral family and Gemma (SentencePiece-style BPE with byte
 * fallback). See bench/published-tokenizers.ts.
 */
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { expect, it } from 'vitest';
import { type PublishedTokenizerName, publishedTokenizerPath } from '../bench/published-tokenizers.js';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { loadCorpus } from '../corpus.js';
import { UNICODE_EDGE_TEXTS, firstLines } from './unicode-test-text.js';

/** Real text: lines of Moby Dick and of State of the Union addresses (a few thousand at most, not whole books). */
async function realLines(count: number): Promise<string[]> {
  const [moby, sotu] = await Promise.all([loadCorpus('moby-dick'), loadCorpus('sotu')]);
  // Every 7th SOTU document so the lines span two centuries of addresses.
  return [...firstLines(moby.documents.slice(0, 3), count), ...firstLines(sotu.documents.filter((_, i) => i % 7 === 0), count)];
}

async function load(name: PublishedTokenizerName): Promise<{ ours: BpeTokenizer; ref: Tokenizer }> {
  const json = JSON.parse(await readFile(publishedTokenizerPath(name), 'utf8')) as object;
  return { ours: BpeTokenizer.fromJSON(json), ref: new Tokenizer(json, {}) };
}

function compare(ours: BpeTokenizer, ref: Tokenizer, texts: readonly string[], addSpecialTokens: boolean): void {
  for (const text of texts) {
    const expected = ref.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    const ids = ours.encode(text, { addSpecialTokens });
    expect(ids, JSON.stringify(text)).toEqual(expected);
    expect(ours.decode(ids), `decode of ${JSON.stringify(text)}`).toBe(ref.decode(expected, { clean_up_tokenization_spaces: false }));
  }
}

/**
 * One test per tokenizer: Unicode edge cases with and without special tokens, all of them as one
 * text, `linesPerCorpus` lines each of Moby Dick and State of the Union addresses, and the thread
 * form (what data prepare's threads rebuild) encoding the same.
 */
export function itMatchesHuggingFace(name: PublishedTokenizerName, linesPerCorpus: number, timeoutMs = 30_000): void {
  it(`${name}: Unicode edge cases (with and without special tokens) and ${2 * linesPerCorpus} lines of real text`, async () => {
    const { ours, ref } = await load(name);
    compare(ours, ref, UNICODE_EDGE_TEXTS, false);
    compare(ours, ref, UNICODE_EDGE_TEXTS, true);
    compare(ours, ref, [UNICODE_EDGE_TEXTS.join('\n')], false);
    compare(ours, ref, await realLines(linesPerCorpus), false);
    const thread = BpeTokenizer.fromThreadForm(structuredClone(ours.threadForm()));
    const sample = UNICODE_EDGE_TEXTS.join(' ');
    expect(thread.encode(sample)).toEqual(ours.encode(sample));
    expect(thread.decode(ours.encode(sample))).toBe(ours.decode(ours.encode(sample)));
  }, timeoutMs);
}
