/**
 * Texts that separate tokenizers which are almost right: CJK, emoji with skin tones and ZWJ
 * sequences, flags, right-to-left scripts, accents composed (NFC) and decomposed (NFD), full-width
 * and compatibility characters (NFKC changes them), long digit runs, runs of spaces, tabs and
 * newlines, leading and trailing spaces, contractions in every case, and special tokens written
 * in the text. For tests and benchmarks that compare with other implementations.
 */
export const UNICODE_EDGE_TEXTS: readonly string[] = [
  'Hello world',
  ' leading space',
  '  two  spaces\t\ttabs\n\nnewlines\r\n',
  'trailing spaces   ',
  '\n\n\n',
  '   ',
  "I'm here, it's OK. I'LL GO. She'S they'RE we'Ve you'd I'M",
  "mean'st a'ready can'st y'all 'Tis O'Neill's rock'n'roll ''quoted'' l'été",
  '12345678901234567890 3.14159 1,000,000 007 2024-06-01 1e-9 ١٢٣٤٥ ૧૨૩',
  '東京は日本の首都です。中文测试，标点符号！韓國語 한국어 문장입니다.',
  '😀👋🏽👩‍👩‍👧🇺🇸🏳️‍🌈 👨🏿‍💻 family: 👨‍👩‍👧‍👦',
  'مرحبا بالعالم — שלום עולם',
  'café café naïve résumé Zürich', // composed and decomposed accents
  'ÅΩß İstanbul ΣΊΣΥΦΟΣ ǅ',
  'Ｆｕｌｌ ｗｉｄｔｈ ①②③ ﬁ ﬀ ㎏ ™ ½',
  'a\u00a0b\u2003c\u200bd\u3000e',
  'x\u0085y\ufeffz\u2028w',
  'tabs\tin\tthe\tmiddle\t\t\tand\r\rcarriage',
  'code: if (x == 1) { return y->z; } // comment\n    indented();',
  'URL https://example.com/a?b=c&d=e#f and e-mail a.b@c.de',
  '<s>hi</s> <|endoftext|> <|begin_of_text|>x<|im_start|>user\nhello<|im_end|> <eos><bos><pad><unk>',
  'Ελληνικά Русский текст Tiếng Việt हिन्दी ภาษาไทย',
  '\u0000\u0007\u001b[0m control',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \u{10FFFF}',
];

/**
 * The first `count` non-empty lines of `documents` (spaces kept), paragraphs cut after each
 * sentence ('. '): SentencePiece-style tokenizers merge a whole line as one word, and a reference
 * implementation that is quadratic in the word length would make a test slow, not stronger.
 */
export function firstLines(documents: readonly string[], count: number): string[] {
  const lines: string[] = [];
  for (const doc of documents) {
    for (const line of doc.split('\n')) {
      for (const sentence of line.split(/(?<=\. )/)) {
        if (sentence.length === 0) continue;
        lines.push(sentence);
        if (lines.length >= count) return lines;
      }
    }
  }
  return lines;
}
