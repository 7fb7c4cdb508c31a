/**
 * Added tokens: whole strings (special tokens like '<|endoftext|>', or words added after training)
 * that are cut out of the text before pre-tokenization and become one id each. Matching follows
 * Hugging Face tokenizers' AddedVocabulary: leftmost-longest, non-overlapping, then per token
 * `single_word` (drop a match touching a word character), `lstrip` / `rstrip` (the token also
 * swallows the whitespace on its left / right).
 */

/** One added token, with Hugging Face's options (all false for trainer's own special tokens). */
export interface AddedToken {
  id: number;
  content: string;
  /** Special tokens (document separators, control tokens) can be left unmatched: EncodeOptions.allowSpecial. */
  special: boolean;
  /** Match only where neither neighbour is a word character. */
  singleWord: boolean;
  /** Also take the whitespace before the token. */
  lstrip: boolean;
  /** Also take the whitespace after the token. */
  rstrip: boolean;
  /** Matched in normalized text (after the normalizer) rather than in the raw text. */
  normalized: boolean;
}

/** Rust regex's `\w` (Unicode), which decides `single_word`. */
const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
/** Rust's `\s`: Unicode White_Space (every such character is one UTF-16 unit). */
const WHITESPACE = /\p{White_Space}/u;

/** Finds one set of added tokens in text (one of Hugging Face's two passes: raw or normalized). */
export class AddedTokenMatcher {
  /** Whether any token is not special (those are matched even when specials are not). */
  private readonly hasOrdinary: boolean;
  private readonly byContent = new Map<string, AddedToken>();
  private readonly regex: RegExp;

  /** `contentOf` gives the string to look for (the normalized content for the normalized pass). */
  constructor(tokens: readonly AddedToken[], contentOf: (token: AddedToken) => string = (t) => t.content) {
    for (const token of tokens) {
      const content = contentOf(token);
      if (content.length > 0) this.byContent.set(content, token); // a repeated content: the last options win, as Hugging Face
    }
    this.hasOrdinary = [...this.byContent.values()].some((t) => !t.special);
    // Literal alternatives, longest first: at the leftmost position the longest one wins.
    const alternatives = [...this.byContent.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.regex = new RegExp(alternatives.length > 0 ? alternatives.join('|') : '(?!)', 'gu');
  }

  get size(): number {
    return this.byContent.size;
  }

  /**
   * Walks `text` in order: `onText` for each stretch between tokens (never empty; with its start index), `onToken` for
   * each token found. With `includeSpecial` false, special tokens are not tokens here: their text
   * goes to `onText` (as Hugging Face's `split_special_tokens`).
   */
  split(text: string, includeSpecial: boolean, onText: (piece: string, start: number) => void, onToken: (id: number) => void): void {
    if (this.byContent.size === 0 || (!includeSpecial && !this.hasOrdinary)) {
      if (text.length > 0) onText(text, 0);
      return;
    }
    let end = 0; // end of the last token taken (with its stripped whitespace)
    const re = new RegExp(this.regex); // own lastIndex: split may be re-entered
    for (let match = re.exec(text); match !== null; match = re.exec(text)) {
      const token = this.byContent.get(match[0]) as AddedToken;
      let start = match.index;
      let stop = start + match[0].length;
      if (token.special && !includeSpecial) continue;
      if (token.singleWord && (endsWithWordChar(text, start) || startsWithWordChar(text, stop))) continue;
      if (token.lstrip) start = Math.max(whitespaceStartBefore(text, start), end);
      if (token.rstrip) stop = whitespaceEndAfter(text, stop);
      if (start > end) onText(text.slice(end, start), end);
      onToken(token.id);
      end = Math.max(end, stop); // the search goes on after the match, not after what rstrip took (as Hugging Face)
    }
    if (end < text.length) onText(text.slice(end), end);
  }
}

function endsWithWordChar(text: string, at: number): boolean {
  if (at === 0) return false;
  const low = text.charCodeAt(at - 1);
  const back = low >= 0xdc00 && low <= 0xdfff && at >= 2 ? 2 : 1; // the whole code point before `at`
  return WORD_CHAR.test(text.slice(at - back, at));
}

function startsWithWordChar(text: string, at: number): boolean {
  const cp = text.codePointAt(at);
  return cp !== undefined && WORD_CHAR.test(String.fromCodePoint(cp));
}

/** Start of the whitespace run that ends at `at`. */
function whitespaceStartBefore(text: string, at: number): number {
  let i = at;
  while (i > 0 && WHITESPACE.test(text[i - 1])) i--;
  return i;
}

/** End of the whitespace run that starts at `at`. */
function whitespaceEndAfter(text: string, at: number): number {
  let i = at;
  while (i < text.length && WHITESPACE.test(text[i])) i++;
  return i;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
