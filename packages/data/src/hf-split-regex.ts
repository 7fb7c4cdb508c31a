import { unsupported } from './hf-component-errors.js';

/**
 * Hugging Face tokenizers runs Split and Replace patterns with Oniguruma (Ruby syntax); Node's
 * RegExp (flags 'gu') differs in ways that change tokens, so patterns are translated, exactly:
 *
 * - `(?i:...)` (Llama 3, Qwen 2/3, SmolLM: `(?i:'s|'t|'re|'ve|'m|'ll|'d)`), which Node 20 rejects:
 *   each letter inside becomes the class of every code point that case-folds with it (so `s` is
 *   `[Ssſ]` and `k` is `[Kk\u212A]`, as Oniguruma's Unicode case folding, not just ASCII);
 * - `\s`, `\S`: Unicode White_Space (JavaScript's adds U+FEFF and misses U+0085);
 * - `\d`, `\D`, `\w`: Unicode (JavaScript's are ASCII);
 * - `.`: any character but '\n'; `^`, `$`: line anchors (Ruby's are always multi-line).
 *
 * Anything without an exact JavaScript equivalent (possessive quantifiers, atomic groups, nested
 * classes, `(?i)` for the rest of the pattern, letters in a class inside `(?i:...)`) is refused
 * with TRAINER_ERR_TOKENIZER_UNSUPPORTED rather than approximated.
 */
export function onigurumaToJs(source: string): string {
  let out = '';
  const foldStack: boolean[] = [];
  let fold = false;
  let i = 0;
  const refuse = (what: string): never => {
    throw unsupported(`regex ${JSON.stringify(source)} (${what} at offset ${i})`, 'this pattern uses a construct without an exact JavaScript equivalent; open an issue with the tokenizer.json');
  };
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') {
      const [text, length] = translateEscape(source, i, false, refuse);
      out += text;
      i += length;
    } else if (c === '[') {
      const end = classEnd(source, i, refuse);
      out += translateClass(source.slice(i, end), fold, refuse);
      i = end;
    } else if (c === '(') {
      if (source.startsWith('(?i:', i)) {
        foldStack.push(fold);
        fold = true;
        out += '(?:';
        i += 4;
        continue;
      }
      const prefix = /^\((?:\?(?:<[=!]|[:=!]))?/.exec(source.slice(i))?.[0] ?? '(';
      if (source.startsWith('(?', i) && prefix === '(') refuse(`group ${source.slice(i, i + 4)}`);
      foldStack.push(fold);
      out += prefix;
      i += prefix.length;
    } else if (c === ')') {
      fold = foldStack.pop() ?? refuse('unbalanced )');
      out += c;
      i++;
    } else if ((c === '+' || c === '*' || c === '?' || c === '}') && (source[i + 1] === '+')) {
      refuse('possessive quantifier');
    } else if (c === '.') {
      out += '[^\\n]';
      i++;
    } else if (c === '^') {
      out += '(?:(?<![\\s\\S])|(?<=\\n))';
      i++;
    } else if (c === '$') {
      out += '(?=\\n|(?![\\s\\S]))';
      i++;
    } else {
      const cp = source.codePointAt(i) as number;
      const ch = String.fromCodePoint(cp);
      out += fold && hasCase(ch) ? caseFoldClass(ch) : ch;
      i += ch.length;
    }
  }
  return out;
}

/** `\x` at `at`: its JavaScript form and the source length it used. */
function translateEscape(source: string, at: number, inClass: boolean, refuse: (what: string) => never): [string, number] {
  const next = source[at + 1];
  if (next === undefined) refuse('trailing backslash');
  const braced = /^\\([pPx])\{([^}]*)\}/.exec(source.slice(at));
  if (braced) return [braced[1] === 'x' ? `\\u{${braced[2]}}` : braced[0], braced[0].length];
  switch (next) {
    case 's': return ['\\p{White_Space}', 2];
    case 'S': return ['\\P{White_Space}', 2];
    case 'd': return ['\\p{Nd}', 2];
    case 'D': return ['\\P{Nd}', 2];
    case 'w': return [inClass ? WORD_CHARS : `[${WORD_CHARS}]`, 2];
    case 'W': return inClass ? refuse('\\W inside a class') : [`[^${WORD_CHARS}]`, 2];
    case 'h': case 'H': case 'A': case 'z': case 'Z': case 'G': case 'b': case 'B': case 'R': case 'X': case 'K':
      return refuse(`escape \\${next}`);
    default:
      return [`\\${next}`, 2];
  }
}

/** Oniguruma's Unicode `\w`: letters, marks, decimal numbers, connector punctuation. */
const WORD_CHARS = '\\p{L}\\p{M}\\p{Nd}\\p{Pc}';

/** Index just past the class that opens at `at`. */
function classEnd(source: string, at: number, refuse: (what: string) => never): number {
  let i = at + 1;
  if (source[i] === '^') i++;
  if (source[i] === ']') i++; // a leading ']' is literal
  while (i < source.length) {
    if (source[i] === '\\') i += 2;
    else if (source[i] === '[') refuse('nested character class');
    else if (source[i] === ']') return i + 1;
    else if (source.startsWith('&&', i)) refuse('class intersection &&');
    else i++;
  }
  return refuse('unterminated character class');
}

function translateClass(cls: string, fold: boolean, refuse: (what: string) => never): string {
  let out = '';
  let i = 0;
  while (i < cls.length) {
    if (cls[i] === '\\') {
      const [text, length] = translateEscape(cls, i, true, refuse);
      out += text;
      i += length;
    } else {
      if (fold && /\p{L}/u.test(cls[i])) refuse('letters in a class inside (?i:...)');
      out += cls[i];
      i++;
    }
  }
  return out;
}

/** Highest code point scanned for case variants (all cased letters lie below it, Adlam being the last). */
const CASED_LIMIT = 0x1f000;
const foldClasses = new Map<string, string>();

/** Whether a literal character may have other case forms (syntax characters never do). */
function hasCase(ch: string): boolean {
  return ch.toLowerCase() !== ch.toUpperCase() || /\p{L}/u.test(ch);
}

/** `ch` (a letter) as a class of every code point equal to it under Unicode simple case folding, or `ch` itself when it has no other case. */
function caseFoldClass(ch: string): string {
  const known = foldClasses.get(ch);
  if (known !== undefined) return known;
  const test = new RegExp(`^${ch}$`, 'iu');
  const variants: string[] = [];
  for (let cp = 0; cp < CASED_LIMIT; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const s = String.fromCodePoint(cp);
    if (test.test(s)) variants.push(s);
  }
  const result = variants.length > 1 ? `[${variants.join('')}]` : ch;
  foldClasses.set(ch, result);
  return result;
}
