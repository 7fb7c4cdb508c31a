import { describe, expect, it } from 'vitest';
import { corpusBleu, exactMatch, formatBleu, tokenize13a } from './bleu.js';

describe('tokenize13a (sacreBLEU 13a)', () => {
  it('splits punctuation and symbols, keeps numbers, apostrophes and inner hyphens', () => {
    expect(tokenize13a('Hello, world.')).toEqual(['Hello', ',', 'world', '.']);
    expect(tokenize13a('3.14 and 1,000 people')).toEqual(['3.14', 'and', '1,000', 'people']);
    expect(tokenize13a("It wasn't well-known (really)!")).toEqual(['It', "wasn't", 'well-known', '(', 'really', ')', '!']);
    expect(tokenize13a('pages 10-12')).toEqual(['pages', '10', '-', '12']);
    expect(tokenize13a('&quot;yes&quot; &amp; no')).toEqual(['"', 'yes', '"', '&', 'no']);
    expect(tokenize13a('a$b  c\nd')).toEqual(['a', '$', 'b', 'c', 'd']);
    expect(tokenize13a(' AA1 R D V AA2 R K')).toEqual(['AA1', 'R', 'D', 'V', 'AA2', 'R', 'K']);
  });
});

describe('corpusBleu', () => {
  it('is 100 for a perfect hypothesis', () => {
    const b = corpusBleu(['the cat sat on the mat'], [['the cat sat on the mat']]);
    expect(b.score).toBeCloseTo(100, 10);
    expect(b.brevityPenalty).toBe(1);
  });

  it('clips repeated words and smooths zero-match orders like mteval (hand-computed)', () => {
    // hyp: 7 x "the"; ref: "the cat is on the mat" (6 tokens, "the" twice)
    // p1 = 2/7 (clipped); p2..p4 have no match: 'exp' smoothing gives 100/(2*6), 100/(4*5), 100/(8*4)
    const b = corpusBleu(['the the the the the the the'], [['the cat is on the mat']]);
    expect(b.counts).toEqual([2, 0, 0, 0]);
    expect(b.totals).toEqual([7, 6, 5, 4]);
    const p = [(100 * 2) / 7, 100 / 12, 100 / 20, 100 / 32];
    b.precisions.forEach((x, i) => expect(x).toBeCloseTo(p[i], 10));
    expect(b.brevityPenalty).toBe(1); // 7 >= 6
    expect(b.score).toBeCloseTo(Math.exp(p.reduce((a, x) => a + Math.log(x), 0) / 4), 10);
    expect(b.score).toBeCloseTo(7.81, 2);
    // without smoothing a zero precision makes BLEU 0
    expect(corpusBleu(['the the the the the the the'], [['the cat is on the mat']], { smooth: 'none' }).score).toBe(0);
  });

  it('applies the brevity penalty exp(1 - r/c) to a short hypothesis (hand-computed)', () => {
    // every n-gram of "the cat sat on" is in the reference: p_n = 100; c = 4, r = 6
    const b = corpusBleu(['the cat sat on'], [['the cat sat on the mat']]);
    expect(b.precisions).toEqual([100, 100, 100, 100]);
    expect(b.brevityPenalty).toBeCloseTo(Math.exp(1 - 6 / 4), 12);
    expect(b.score).toBeCloseTo(60.653, 3);
  });

  it('is 0 when the corpus has no 4-gram at all (sacreBLEU without effective order)', () => {
    expect(corpusBleu(['the cat'], [['the cat']]).score).toBe(0);
  });

  it('sums statistics over the corpus before taking the geometric mean', () => {
    // segment 1: 4/4 unigrams, 3/3 bigrams, 2/2, 1/1; segment 2: "a b c d" vs "a b x d": 3/4, 1/3, 0/2, 0/1
    const b = corpusBleu(['w x y z', 'a b c d'], [['w x y z'], ['a b x d']]);
    expect(b.counts).toEqual([7, 4, 2, 1]);
    expect(b.totals).toEqual([8, 6, 4, 2]);
    expect(b.score).toBeCloseTo(100 * Math.exp((Math.log(7 / 8) + Math.log(4 / 6) + Math.log(2 / 4) + Math.log(1 / 2)) / 4), 10);
  });

  it('clips against the reference with the most occurrences and picks the closest reference length', () => {
    const b = corpusBleu(['the the'], [['the cat', 'the the dog']]);
    expect(b.counts[0]).toBe(2);
    // hyp length 2: references of 2 and 3 tokens, the closest is 2
    expect(b.refLength).toBe(2);
    // ties go to the shorter reference: 3 tokens vs references of 2 and 4
    expect(corpusBleu(['a b c'], [['a b', 'a b c d']]).refLength).toBe(2);
  });

  it("matches sacreBLEU's documented examples", () => {
    const sys = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
    const refs = [['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'], ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.']];
    const perSegment = sys.map((_, i) => refs.map((r) => r[i]));
    expect(formatBleu(corpusBleu(sys, perSegment))).toBe('BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)');
    // variable number of references: an empty reference is skipped
    perSegment[0] = ['', 'The dog had bit the man.'];
    expect(formatBleu(corpusBleu(sys, perSegment))).toBe('BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)');
  });

  it('refuses mismatched inputs', () => {
    expect(() => corpusBleu(['a'], [])).toThrow(RangeError);
    expect(() => corpusBleu(['a'], [['']])).toThrow(/no reference/);
  });
});

describe('exactMatch', () => {
  it('compares with every reference, ignoring surrounding whitespace', () => {
    expect(exactMatch(' AH0 ', [' EY1', ' AH0'])).toBe(true);
    expect(exactMatch('AH0 N', [' AH0'])).toBe(false);
  });
});
