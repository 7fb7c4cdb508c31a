/**
 * GPT-2 pre-tokenization: text is first split into "words" (contractions, runs of letters, runs of
 * digits, runs of other symbols, whitespace), each optionally led by one space; BPE merges are then
 * learned and applied inside a word only, never across a boundary. This is the regex of OpenAI's
 * GPT-2 encoder.py, written with Unicode property escapes.
 */
export const GPT2_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/**
 * The GPT-2 pattern as Hugging Face tokenizers applies it (ByteLevel with `use_regex`): there `\s`
 * is Unicode White_Space, which counts U+0085 (NEL) as whitespace and U+FEFF (BOM) as not, while
 * JavaScript's `\s` (and so js-tiktoken) does the opposite. Identical to GPT2_PATTERN on text
 * without those two characters; GPT2_PATTERN stays as it is for trainer's own tokenizer files,
 * whose tokens depend on it.
 */
export const HF_BYTE_LEVEL_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";

/** Pre-tokenization patterns this build can apply, by the exact source string stored in tokenizer files. */
export const KNOWN_PATTERNS: ReadonlySet<string> = new Set([GPT2_PATTERN]);

/**
 * Calls `onWord` for every pre-token of `text`, in order. The pieces always concatenate back to
 * `text`: the GPT-2 pattern matches every code point (lone surrogates fall in the "other symbols"
 * class), and any gap the pattern would leave is still emitted as its own piece, so no byte is
 * ever dropped.
 */
export function forEachPretoken(text: string, pattern: RegExp, onWord: (word: string) => void): void {
  const re = new RegExp(pattern.source, 'gu');
  let end = 0;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text)) !== null) {
    const word = match[0];
    if (word.length === 0) {
      // A pattern that can match the empty string would loop forever; step over one code point.
      re.lastIndex = match.index + ((text.codePointAt(match.index) ?? 0) > 0xffff ? 2 : 1);
      continue;
    }
    if (match.index > end) onWord(text.slice(end, match.index));
    onWord(word);
    end = match.index + word.length;
  }
  if (end < text.length) onWord(text.slice(end));
}

/** Splits `text` into its pre-tokens (see forEachPretoken). */
export function pretokenize(text: string, pattern: RegExp = new RegExp(GPT2_PATTERN, 'gu')): string[] {
  const words: string[] = [];
  forEachPretoken(text, pattern, (w) => words.push(w));
  return words;
}
