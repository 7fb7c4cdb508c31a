/** Test helpers: a seeded generator of awkward strings (for property tests over the tokenizer). */

/** Small deterministic PRNG (mulberry32) for tests. */
export function seededRandom(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const PIECES = [
  'the', ' whale', ' ', '  ', '\n', '\r\n', '\t', "'s", "'ll", '123', '3.14', '!?', '...', '—', '“', '”',
  '東京', '世界', 'こんにちは', '😀', '👋🏽', '👩‍👩‍👧', '🇺🇸', 'é', 'e\u0301', 'n\u0303', 'Ω', 'ß', 'İ',
  '\u0000', '\u0007', '\u001b[0m', '\u200b', '\ufeff', '\u{10FFFF}', '<|endoftext|>', '<|', '|>',
];

/** A random string mixing ASCII, CJK, emoji, combining marks, control and random code units. */
export function randomString(rand: (n: number) => number, maxPieces = 30, allowLoneSurrogates = true): string {
  let s = '';
  const count = rand(maxPieces + 1);
  for (let i = 0; i < count; i++) {
    const kind = rand(10);
    if (kind < 6) s += PIECES[rand(PIECES.length)];
    else if (kind < 8) s += String.fromCharCode(32 + rand(95));
    else if (kind < 9) s += String.fromCodePoint(rand(0x110000 - 0x800) + (rand(2) === 0 ? 0 : 0x800));
    else {
      let unit = rand(0x10000);
      if (!allowLoneSurrogates && unit >= 0xd800 && unit <= 0xdfff) unit = 0x41;
      s += String.fromCharCode(unit);
    }
  }
  return s;
}

/** What UTF-8 encoding makes of a string: itself, except lone surrogates become U+FFFD. */
export function utf8Normalized(s: string): string {
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(s));
}
