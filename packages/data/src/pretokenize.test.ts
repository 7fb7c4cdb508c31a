import { describe, expect, it } from 'vitest';
import { pretokenize } from './pretokenize.js';

describe('pretokenize (GPT-2 pattern)', () => {
  it('splits contractions, letters, numbers, symbols and whitespace like GPT-2', () => {
    expect(pretokenize("Hello world's 123 !!  ok\n\nyes")).toEqual(['Hello', ' world', "'s", ' 123', ' !!', ' ', ' ok', '\n', '\n', 'yes']);
    expect(pretokenize("I'll've don't")).toEqual(['I', "'ll", "'ve", ' don', "'t"]);
    expect(pretokenize('naïve café 東京2024')).toEqual(['naïve', ' café', ' 東京', '2024']);
  });

  it('keeps surrogate pairs whole and loses no code unit, even lone surrogates', () => {
    const text = 'a\u{1F600}b \uD800x\uDC00 \u0301\u0000\t';
    const pieces = pretokenize(text);
    expect(pieces.join('')).toBe(text);
    expect(pieces).toContain('\u{1F600}');
  });

  it('pieces always concatenate back to the input (random strings)', () => {
    let state = 12345;
    const rand = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    for (let trial = 0; trial < 300; trial++) {
      let s = '';
      const len = rand(40);
      for (let i = 0; i < len; i++) s += String.fromCharCode(rand(4) === 0 ? rand(0x10000) : rand(128));
      expect(pretokenize(s).join('')).toBe(s);
    }
  });
});
