import { beforeAll, describe, expect, it } from 'vitest';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { trainBpe } from './bpe-train.js';
import { DataErrorCode } from './codes.js';
import { mergeWord } from './internal/bpe-merge.js';
import { expectTrainerError } from './internal/expect-error.js';
import { pairKey } from './internal/pair-key.js';
import { randomString, seededRandom, utf8Normalized } from './internal/test-text.js';

/** GPT-2's encoder.py loop: repeatedly merge all occurrences of the lowest-rank pair. */
function referenceMergeWord(bytes: Uint8Array, merges: ReadonlyArray<readonly [number, number]>): number[] {
  const rank = new Map(merges.map(([a, b], r) => [pairKey(a, b), r]));
  let word = Array.from(bytes);
  for (;;) {
    let best = -1;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = rank.get(pairKey(word[i], word[i + 1]));
      if (r !== undefined && (best < 0 || r < best)) best = r;
    }
    if (best < 0) return word;
    const [a, b] = merges[best];
    const next: number[] = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
        next.push(256 + best);
        i++;
      } else next.push(word[i]);
    }
    word = next;
  }
}

const SAMPLE = [
  'The whale, the whale! Thar she blows. ',
  'Call me Ishmael. Some years ago—never mind how long precisely—having little or no money. ',
  '東京と世界、こんにちは世界。😀😀👋🏽 naïve café e\u0301e\u0301 ',
  "It's 1851 and I'll go to sea, 3.14 miles away!!! \n\n\t",
].join('').repeat(20);

describe('BpeTokenizer', () => {
  let tok: BpeTokenizer;
  beforeAll(() => {
    tok = trainBpe([SAMPLE], { vocabSize: 400 });
  });

  it('round-trips emoji, CJK, combining marks, control characters and the empty string', () => {
    const cases = [
      '', 'a', ' ', 'hello world', '😀', '👩‍👩‍👧 family', '🇺🇸🇯🇵', '東京と世界', 'e\u0301 vs é', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇',
      '\u0000\u0001\u001f\u007f', '\r\n\t\v\f', '\u{10FFFF}\u{E000}', '\ufeffBOM first', 'tabs\t\tand  spaces   ',
      '<|endoftext|>', 'a'.repeat(5000), ' '.repeat(3000), '1234567890'.repeat(300),
    ];
    for (const text of cases) {
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.eotToken)).toBe(true);
    }
    expect(tok.encode('')).toEqual([]);
  });

  it('lone surrogates decode to what TextEncoder makes of them (U+FFFD)', () => {
    for (const text of ['\uD800', 'a\uDC00b', '\uDBFF\uDBFF', '😀\uD83D']) {
      expect(tok.decode(tok.encode(text))).toBe(utf8Normalized(text));
    }
    expect(tok.decode(tok.encode('x\uD800y'))).toBe('x\uFFFDy');
  });

  it('round-trips many random strings exactly (property test)', () => {
    const rand = seededRandom(7);
    for (let trial = 0; trial < 2000; trial++) {
      const text = randomString(rand, 40);
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(utf8Normalized(text));
      expect(tok.decodeBytes(ids)).toEqual(new TextEncoder().encode(text));
    }
  });

  it('compresses text it was trained on', () => {
    const text = 'The whale, the whale! Thar she blows.';
    expect(tok.encode(text).length).toBeLessThan(new TextEncoder().encode(text).length / 2);
  });

  it('heap-based word merge equals the GPT-2 reference loop, including very long words', () => {
    const rand = seededRandom(99);
    const encoder = new TextEncoder();
    const ranks = new Map(tok.merges.map(([a, b], r) => [pairKey(a, b), r]));
    const words = ['aaaaaaa', 'whalewhalewhale', ' '.repeat(257), 'e\u0301'.repeat(50), '😀'.repeat(33)];
    for (let i = 0; i < 500; i++) words.push(randomString(rand, 12));
    for (const word of words) {
      const bytes = encoder.encode(word);
      expect(mergeWord(bytes, ranks)).toEqual(referenceMergeWord(bytes, tok.merges));
    }
  });

  it('decodes partial UTF-8 at the end without throwing, and streams it whole', () => {
    const ids = Array.from(new TextEncoder().encode('ok 😀')); // byte tokens: the emoji is 4 bytes
    expect(tok.decode(ids.slice(0, -2))).toBe('ok \uFFFD');
    const stream = tok.createStreamDecoder();
    const parts = ids.map((id) => stream.push([id]));
    expect(parts.join('') + stream.flush()).toBe('ok 😀');
    expect(parts[parts.length - 2]).toBe(''); // the emoji is held back until its last byte
    const cut = tok.createStreamDecoder();
    expect(cut.push(ids.slice(0, -1)) + cut.flush()).toBe('ok \uFFFD');
  });

  it('maps special token text to the eot id only when allowed', () => {
    const text = 'end<|endoftext|>start';
    const plain = tok.encode(text);
    expect(plain).not.toContain(tok.eotToken);
    const special = tok.encode(text, { allowSpecial: true });
    expect(special.filter((id) => id === tok.eotToken)).toHaveLength(1);
    expect(tok.decode(special)).toBe(text);
    expect(tok.eotToken).toBe(tok.vocabSize - 1);
  });

  it('refuses token ids outside the vocabulary', async () => {
    await expectTrainerError(() => tok.decode([1, tok.vocabSize]), DataErrorCode.TOKEN_ID_RANGE, /index 1/);
    await expectTrainerError(() => tok.decode([-1]), DataErrorCode.TOKEN_ID_RANGE);
    await expectTrainerError(() => tok.decodeBytes([0.5]), DataErrorCode.TOKEN_ID_RANGE);
  });

  it('encoding is the same with a cold or warm cache and across instances', () => {
    const text = SAMPLE.slice(0, 2000);
    const first = tok.encode(text);
    expect(tok.encode(text)).toEqual(first);
    expect(BpeTokenizer.fromJSON(tok.toJSON()).encode(text)).toEqual(first);
  });
});
