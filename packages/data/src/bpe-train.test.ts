import { describe, expect, it } from 'vitest';
import { trainBpe } from './bpe-train.js';
import { loadCorpus } from './corpus.js';
import { DataErrorCode } from './codes.js';
import { expectTrainerError } from './internal/expect-error.js';
import { pairKey } from './internal/pair-key.js';
import { pretokenize } from './pretokenize.js';

/** Textbook BPE training: recount every pair after every merge (slow, obviously correct). */
function referenceTrain(texts: string[], merges: number): Array<[number, number]> {
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of pretokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  let words = [...counts].map(([w, c]) => ({ ids: Array.from(new TextEncoder().encode(w)), c }));
  const out: Array<[number, number]> = [];
  for (let m = 0; m < merges; m++) {
    const pairs = new Map<number, number>();
    for (const { ids, c } of words) for (let i = 0; i + 1 < ids.length; i++) pairs.set(pairKey(ids[i], ids[i + 1]), (pairs.get(pairKey(ids[i], ids[i + 1])) ?? 0) + c);
    let best = -1;
    let bestCount = 0;
    for (const [key, count] of pairs) if (count > bestCount || (count === bestCount && key < best)) [best, bestCount] = [key, count];
    if (best < 0) break;
    const a = Math.floor(best / 2 ** 21);
    const b = best % 2 ** 21;
    out.push([a, b]);
    words = words.map(({ ids, c }) => {
      const next: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(256 + m);
          i++;
        } else next.push(ids[i]);
      }
      return { ids: next, c };
    });
  }
  return out;
}

const TEXTS = [
  'the cat sat on the mat; the cat ate the rat. aaaa aaa aa a',
  "It's a whale's tale: 12 whales, 123 boats, 1234 men!! ",
  '東京 東京 世界 😀😀 naïve naïve e\u0301e\u0301',
];

describe('trainBpe', () => {
  it('learns the same merges as a textbook (recount-everything) trainer', () => {
    const tok = trainBpe(TEXTS, { vocabSize: 257 + 60 });
    expect(tok.merges).toEqual(referenceTrain(TEXTS, 60));
    expect(tok.vocabSize).toBe(317);
    expect(tok.eotToken).toBe(316);
  });

  it('is deterministic: same corpus, identical tokenizer and hash', () => {
    const a = trainBpe(TEXTS, { vocabSize: 300 });
    const b = trainBpe([...TEXTS], { vocabSize: 300 });
    expect(b.toJSON()).toEqual(a.toJSON());
    expect(b.hash).toBe(a.hash);
    expect(trainBpe(TEXTS.slice(1), { vocabSize: 300 }).hash).not.toBe(a.hash);
  });

  it('reports progress once per merge', () => {
    const calls: Array<[number, number]> = [];
    trainBpe(TEXTS, { vocabSize: 267, onProgress: (m, t) => calls.push([m, t]) });
    expect(calls).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, 10]));
  });

  it('vocabSize 257 means no merges', () => {
    const tok = trainBpe(TEXTS, { vocabSize: 257 });
    expect(tok.merges).toHaveLength(0);
    expect(tok.encode('ab')).toEqual([97, 98]);
  });

  it('refuses a vocabSize below 257, non-integer, or more than the corpus supports', async () => {
    await expectTrainerError(() => trainBpe(TEXTS, { vocabSize: 256 }), DataErrorCode.TOKENIZER_VOCAB, /256/);
    await expectTrainerError(() => trainBpe(TEXTS, { vocabSize: 1000.5 }), DataErrorCode.TOKENIZER_VOCAB);
    const err = await expectTrainerError(() => trainBpe(['ab ab abc'], { vocabSize: 300 }), DataErrorCode.TOKENIZER_VOCAB, /runs out of pairs to merge after 3 merges/);
    // 'ab', ' ab', ' abc': merges ab, ' ab', ' abc' and then every word is one token.
    expect(err.details).toMatchObject({ maxVocabSize: 260 });
    expect(trainBpe(['ab ab abc'], { vocabSize: 260 }).encode(' abc')).toEqual([258]);
    await expectTrainerError(() => trainBpe([], { vocabSize: 258 }), DataErrorCode.TOKENIZER_VOCAB);
  });

  it('on Moby Dick at 2048: common words become single tokens, merges never cross pre-token boundaries', async () => {
    const corpus = await loadCorpus('moby-dick');
    const tok = trainBpe(corpus.documents, { vocabSize: 2048 });
    expect(tok.vocabSize).toBe(2048);
    for (const word of [' the', ' and', ' of', ' whale', ' Ahab', ' ship', ' sea', 'The', ' Queequeg']) {
      expect(tok.encode(word), word).toHaveLength(1);
    }
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let checked = 0;
    for (let id = 256; id < tok.eotToken; id++) {
      let text: string;
      try {
        text = decoder.decode(tok.decodeBytes([id]));
      } catch {
        continue; // a piece of a multi-byte character: nothing to split
      }
      expect(pretokenize(text), JSON.stringify(text)).toHaveLength(1);
      checked++;
    }
    expect(checked).toBeGreaterThan(1700);
    // About 3.2 bytes per token at this small vocabulary (bytes alone would be 1.0).
    const sample = corpus.documents[10];
    expect(new TextEncoder().encode(sample).length / tok.encode(sample).length).toBeGreaterThan(2.8);
  });
});
