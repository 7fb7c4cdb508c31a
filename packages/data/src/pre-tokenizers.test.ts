/**
 * Pre-tokenizers, decoders and the regex translation where @huggingface/tokenizers (the port our
 * equivalence tests compare with) departs from Hugging Face's Rust tokenizers: checked against the
 * expectations of the Rust library's own unit tests (tokenizers/src/tokenizer/normalizer.rs
 * `split` tests, pre_tokenizers/metaspace.rs, punctuation.rs, digits.rs, decoders).
 */
import { describe, expect, it } from 'vitest';
import { DataErrorCode } from './codes.js';
import { buildDecoder } from './decoders.js';
import { onigurumaToJs } from './hf-split-regex.js';
import { expectTrainerError } from './internal/expect-error.js';
import { buildPreTokenizer } from './pre-tokenizers.js';

function words(spec: object, text: string, first = true): string[] {
  const out: string[] = [];
  buildPreTokenizer(spec)(text, first, (w) => out.push(w));
  return out;
}

describe('pre-tokenizers as Hugging Face (Rust) splits', () => {
  it('Split behaviours on "The-final--countdown"', () => {
    const split = (behavior: string, invert = false): string[] => words({ type: 'Split', pattern: { String: '-' }, behavior, invert }, 'The-final--countdown');
    expect(split('Removed')).toEqual(['The', 'final', 'countdown']);
    expect(split('Isolated')).toEqual(['The', '-', 'final', '-', '-', 'countdown']);
    expect(split('MergedWithPrevious')).toEqual(['The-', 'final-', '-', 'countdown']);
    expect(split('MergedWithNext')).toEqual(['The', '-final', '-', '-countdown']);
    expect(split('Contiguous')).toEqual(['The', '-', 'final', '--', 'countdown']);
    // Inverted: the pattern's matches are the words, the rest the delimiters.
    expect(words({ type: 'Split', pattern: { Regex: '\\w+' }, behavior: 'Removed', invert: true }, 'Hey friend!')).toEqual(['Hey', 'friend']);
  });

  it('Metaspace: every space a "▁" that starts a word; prepend schemes always / first / never', () => {
    expect(words({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }, 'Hey   friend!')).toEqual(['▁Hey', '▁', '▁', '▁friend!']);
    expect(words({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true }, 'Hey friend', false)).toEqual(['Hey', '▁friend']);
    expect(words({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true }, 'Hey friend', true)).toEqual(['▁Hey', '▁friend']);
    expect(words({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: false }, 'Hey friend')).toEqual(['Hey▁friend']);
    expect(words({ type: 'Metaspace', replacement: '▁', add_prefix_space: true }, 'Hey')).toEqual(['▁Hey']); // files before prepend_scheme
  });

  it('Punctuation isolates each punctuation character; Digits use Unicode numbers', () => {
    expect(words({ type: 'Punctuation', behavior: 'Isolated' }, 'Hey friend!     How are you?!?')).toEqual(['Hey friend', '!', '     How are you', '?', '!', '?']);
    expect(words({ type: 'Digits', individual_digits: false }, 'Hey 123 friend! ١٢٣')).toEqual(['Hey ', '123', ' friend! ', '١٢٣']);
    expect(words({ type: 'Digits', individual_digits: true }, 'a12')).toEqual(['a', '1', '2']);
  });

  it('ByteLevel adds its prefix space to every piece it gets, and splits with the GPT-2 regex', () => {
    expect(words({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: true, use_regex: true }] }, 'ab12')).toEqual([' ab', ' 1', ' 2']);
  });
});

describe('decoders as Hugging Face (Rust) decodes', () => {
  it('Metaspace drops the first token\'s "▁"s (unless the scheme is never), ByteFallback turns invalid bytes into one U+FFFD each', () => {
    expect(buildDecoder({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' })!(['▁Hey', '▁friend!'])).toEqual(['Hey', ' friend!']);
    expect(buildDecoder({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'never' })!(['▁Hey', '▁friend!'])).toEqual([' Hey', ' friend!']);
    expect(buildDecoder({ type: 'ByteFallback' })!(['<0xE5>', '<0x8f>', '<0xab>', 'a'])).toEqual(['叫', 'a']);
    expect(buildDecoder({ type: 'ByteFallback' })!(['<0xE5>', '<0x8f>', 'a'])).toEqual(['\uFFFD', '\uFFFD', 'a']);
    expect(buildDecoder({ type: 'ByteFallback' })!(['<0xEF>', '<0xBB>', '<0xBF>', 'a'])).toEqual(['\uFEFF', 'a']); // a byte order mark is text (String::from_utf8)
    expect(buildDecoder({ type: 'Strip', content: ' ', start: 1, stop: 0 })!(['  a ', ' b'])).toEqual([' a ', 'b']);
  });
});

describe('Oniguruma patterns in Node RegExp', () => {
  it("translates (?i:...) with Unicode case folding: 's also matches 'ſ (U+017F), 'k matches Kelvin K (U+212A)", () => {
    const re = new RegExp(`^(?:${onigurumaToJs("(?i:'s|'k)|x")})$`, 'u');
    for (const ok of ["'s", "'S", "'\u017F", "'k", "'K", "'\u212A", 'x']) expect(re.test(ok), ok).toBe(true);
    for (const no of ["'t", 'X', "'ss"]) expect(re.test(no), no).toBe(false);
  });

  it('\\s is Unicode White_Space (U+0085 yes, U+FEFF no), \\d Unicode decimal digits, . not a newline', () => {
    const re = (p: string): RegExp => new RegExp(`^(?:${onigurumaToJs(p)})$`, 'u');
    expect(re('\\s').test('\u0085')).toBe(true);
    expect(re('\\s').test('\ufeff')).toBe(false);
    expect(re('[^\\s\\p{L}]').test('\ufeff')).toBe(true);
    expect(re('\\d').test('١')).toBe(true);
    expect(re('.').test('\n')).toBe(false);
  });

  it('refuses what has no exact JavaScript equivalent, naming it', async () => {
    for (const [pattern, what] of [['a++', /possessive/], ['(?>a)', /group/], ['[a[b]]', /nested/], ['(?i:[a-z])', /inside \(\?i/], ['\\Gx', /escape/]] as const) {
      await expectTrainerError(() => onigurumaToJs(pattern), DataErrorCode.TOKENIZER_UNSUPPORTED, what);
    }
  });
});
