import { describe, expect, it } from 'vitest';
import { type AddedToken, AddedTokenMatcher } from './added-tokens.js';

function token(id: number, content: string, opts: Partial<AddedToken> = {}): AddedToken {
  return { id, content, special: false, singleWord: false, lstrip: false, rstrip: false, normalized: false, ...opts };
}

function split(matcher: AddedTokenMatcher, text: string, includeSpecial = true): Array<string | number> {
  const out: Array<string | number> = [];
  matcher.split(text, includeSpecial, (piece) => out.push(piece), (id) => out.push(id));
  return out;
}

describe('AddedTokenMatcher (Hugging Face AddedVocabulary rules)', () => {
  it('matches leftmost-longest, without overlaps', () => {
    const m = new AddedTokenMatcher([token(1, '<|end'), token(2, '<|endoftext|>'), token(3, 'ab')]);
    expect(split(m, 'x<|endoftext|>y<|end z')).toEqual(['x', 2, 'y', 1, ' z']);
    expect(split(m, 'aab')).toEqual(['a', 3]);
    expect(split(m, '')).toEqual([]);
    expect(split(m, 'nothing here')).toEqual(['nothing here']);
  });

  it('single_word drops a match next to a word character (letters, marks, digits, _)', () => {
    const m = new AddedTokenMatcher([token(7, '<mask>', { singleWord: true })]);
    // Hugging Face's own test: "<mask> My name <mask> A<mask> <mask>ony <mask>"
    expect(split(m, '<mask> My name <mask> A<mask> <mask>ony <mask>')).toEqual([7, ' My name ', 7, ' A<mask> <mask>ony ', 7]);
    expect(split(m, '<mask>, <mask>- \u25cc\u0330<mask>')).toEqual([7, ', ', 7, '- \u25cc\u0330<mask>']);
    expect(split(m, '_<mask>')).toEqual(['_<mask>']);
  });

  it('lstrip / rstrip take the whitespace around the token (Unicode White_Space)', () => {
    const m = new AddedTokenMatcher([token(5, '<mask>', { lstrip: true, rstrip: true, singleWord: true })]);
    // Hugging Face's test_lstrip_unicode_space.
    expect(split(m, 'Hi <mask> there\t<mask>\t<mask>\u2000')).toEqual(['Hi', 5, 'there', 5, 5]);
    const r = new AddedTokenMatcher([token(6, 'x', { rstrip: true })]);
    expect(split(r, 'ax \u0085\u3000b x')).toEqual(['a', 6, 'b ', 6]);
  });

  it('leaves special tokens as text when specials are not allowed, still matching the others', () => {
    const m = new AddedTokenMatcher([token(1, '<|endoftext|>', { special: true }), token(2, 'whale')]);
    expect(split(m, 'a whale<|endoftext|>b', false)).toEqual(['a ', 2, '<|endoftext|>b']);
    expect(split(m, 'a whale<|endoftext|>b', true)).toEqual(['a ', 2, 1, 'b']);
  });
});
