import { describeComponent, malformed, patternOf, stringOption, unsupported } from './hf-component-errors.js';
import { onigurumaToJs } from './hf-split-regex.js';
import { isRecord } from './internal/is-record.js';
import { HF_BYTE_LEVEL_PATTERN } from './pretokenize.js';

/**
 * A pre-tokenizer stage: cuts one piece of normalized text into words, passing each to `emit` in
 * order. `first` says whether the piece starts the input (Metaspace's prepend scheme "first").
 */
export type PreTokenizer = (piece: string, first: boolean, emit: (word: string, first: boolean) => void) => void;

/** How Split treats the matches: Hugging Face's SplitDelimiterBehavior. */
type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS: ReadonlySet<string> = new Set(['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']);
const SUPPORTED = 'ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, Sequence';

/**
 * The byte-level pre-tokenization BpeTokenizer runs on its fast path (one regex over each piece,
 * words isolated, optional leading space): what GPT-2's ByteLevel and Llama 3's / Qwen's
 * Sequence[Split(regex, Isolated), ByteLevel(use_regex: false)] both are. Undefined when `spec`
 * is something else (then buildPreTokenizer runs it).
 */
export function byteLevelFastPath(spec: unknown): { pattern: string | null; addPrefixSpace: boolean } | undefined {
  const parts = isRecord(spec) && spec.type === 'Sequence' && Array.isArray(spec.pretokenizers) ? (spec.pretokenizers as unknown[]) : [spec];
  const last = parts[parts.length - 1];
  if (!isRecord(last) || last.type !== 'ByteLevel') return undefined;
  const addPrefixSpace = last.add_prefix_space !== false; // Hugging Face's defaults for options a file leaves out
  const useRegex = last.use_regex !== false;
  if (parts.length === 1) return { pattern: useRegex ? HF_BYTE_LEVEL_PATTERN : null, addPrefixSpace };
  const split = parts[0];
  if (parts.length !== 2 || useRegex || addPrefixSpace || !isRecord(split) || split.type !== 'Split' || split.behavior !== 'Isolated' || split.invert === true) return undefined;
  const pattern = patternOf('pre-tokenizer Split', split.pattern);
  return 'regex' in pattern ? { pattern: onigurumaToJs(pattern.regex), addPrefixSpace: false } : undefined;
}

/** Whether the pre-tokenizer maps text to bytes (a ByteLevel stage): the BPE model then works on UTF-8 bytes rather than characters. */
export function hasByteLevel(spec: unknown): boolean {
  if (!isRecord(spec)) return false;
  if (spec.type === 'ByteLevel') return true;
  return spec.type === 'Sequence' && Array.isArray(spec.pretokenizers) && spec.pretokenizers.some(hasByteLevel);
}

/** The pre-tokenizer a tokenizer.json `pre_tokenizer` describes; none: the piece is one word. */
export function buildPreTokenizer(spec: unknown): PreTokenizer {
  if (spec === null || spec === undefined) return (piece, first, emit) => emit(piece, first);
  if (!isRecord(spec)) throw unsupportedPreTokenizer(spec);
  switch (spec.type) {
    case 'ByteLevel': {
      const addPrefixSpace = spec.add_prefix_space !== false;
      const split = spec.use_regex !== false ? splitter(new RegExp(HF_BYTE_LEVEL_PATTERN, 'gu'), 'Isolated', false) : undefined;
      return (piece, first, emit) => {
        const text = addPrefixSpace && !piece.startsWith(' ') ? ` ${piece}` : piece;
        if (split) split(text, first, emit);
        else emit(text, first);
      };
    }
    case 'Split': {
      const behavior = String(spec.behavior);
      if (!BEHAVIORS.has(behavior)) throw malformed(`pre-tokenizer Split behavior ${JSON.stringify(spec.behavior)}`);
      const pattern = patternOf('pre-tokenizer Split', spec.pattern);
      const regex = 'literal' in pattern ? new RegExp(escapeRegExp(pattern.literal), 'gu') : new RegExp(onigurumaToJs(pattern.regex), 'gu');
      return splitter(regex, behavior as SplitBehavior, spec.invert === true);
    }
    case 'Metaspace': {
      const replacement = stringOption('pre-tokenizer Metaspace', spec, 'replacement', '▁');
      const scheme = typeof spec.prepend_scheme === 'string' ? spec.prepend_scheme : spec.add_prefix_space === false ? 'never' : 'always';
      if (!['always', 'first', 'never'].includes(scheme)) throw malformed(`pre-tokenizer Metaspace prepend_scheme ${JSON.stringify(scheme)}`);
      const split = spec.split !== false ? splitter(new RegExp(escapeRegExp(replacement), 'gu'), 'MergedWithNext', false) : undefined;
      return (piece, first, emit) => {
        let text = piece.replaceAll(' ', replacement);
        if ((scheme === 'always' || (scheme === 'first' && first)) && !text.startsWith(replacement)) text = replacement + text;
        if (split) split(text, first, emit);
        else emit(text, first);
      };
    }
    case 'Digits':
      return splitter(/\p{N}/gu, spec.individual_digits === true ? 'Isolated' : 'Contiguous', false);
    case 'Whitespace':
      return splitter(/[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+/gu, 'Removed', true);
    case 'WhitespaceSplit':
      return splitter(/\p{White_Space}/gu, 'Removed', false);
    case 'Punctuation': {
      const behavior = typeof spec.behavior === 'string' ? spec.behavior : 'Isolated';
      if (!BEHAVIORS.has(behavior)) throw malformed(`pre-tokenizer Punctuation behavior ${JSON.stringify(spec.behavior)}`);
      return splitter(/[\p{P}!-/:-@[-`{-~]/gu, behavior as SplitBehavior, false);
    }
    case 'Sequence': {
      if (!Array.isArray(spec.pretokenizers)) throw unsupportedPreTokenizer(spec);
      const stages = spec.pretokenizers.map(buildPreTokenizer);
      return stages.reduceRight<PreTokenizer>((rest, stage) => (piece, first, emit) => stage(piece, first, (word, wordFirst) => rest(word, wordFirst, emit)), (piece, first, emit) => emit(piece, first));
    }
    default:
      throw unsupportedPreTokenizer(spec);
  }
}

/**
 * Hugging Face's `split(pattern, behavior)`: the matches of `regex` (or, inverted, the text
 * between them) are delimiters, treated as `behavior` says; empty words are dropped.
 */
function splitter(regex: RegExp, behavior: SplitBehavior, invert: boolean): PreTokenizer {
  return (piece, first, emit) => {
    // Segments [start, end, isDelimiter] covering the piece.
    const segments: Array<[number, number, boolean]> = [];
    const re = new RegExp(regex);
    let end = 0;
    for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
      if (m[0].length === 0) {
        re.lastIndex = m.index + ((piece.codePointAt(m.index) ?? 0) > 0xffff ? 2 : 1);
        continue;
      }
      if (m.index > end) segments.push([end, m.index, invert]);
      segments.push([m.index, m.index + m[0].length, !invert]);
      end = m.index + m[0].length;
    }
    if (end < piece.length) segments.push([end, piece.length, invert]);

    const words: Array<[number, number]> = [];
    let pendingStart = -1; // MergedWithNext: where the delimiter waiting for the next word starts
    let previousDelimiter = false;
    for (const [start, stop, isDelimiter] of segments) {
      const follows = previousDelimiter;
      previousDelimiter = isDelimiter;
      if (!isDelimiter) {
        if (pendingStart >= 0) {
          words.push([pendingStart, stop]);
          pendingStart = -1;
        } else words.push([start, stop]);
        continue;
      }
      switch (behavior) {
        case 'Removed':
          break;
        case 'Isolated':
          words.push([start, stop]);
          break;
        case 'MergedWithPrevious': // onto the word before, unless that was a delimiter too
          if (words.length > 0 && !follows) words[words.length - 1][1] = stop;
          else words.push([start, stop]);
          break;
        case 'MergedWithNext': // onto the word after, unless that is a delimiter too
          if (pendingStart >= 0) words.push([pendingStart, start]);
          pendingStart = start;
          break;
        case 'Contiguous': // adjacent delimiters become one word
          if (words.length > 0 && follows) words[words.length - 1][1] = stop;
          else words.push([start, stop]);
          break;
      }
    }
    if (pendingStart >= 0) words.push([pendingStart, piece.length]);
    for (const [start, stop] of words) if (stop > start) emit(piece.slice(start, stop), first && start === 0);
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); // the characters RegExp 'u' lets be escaped outside a class
}

function unsupportedPreTokenizer(spec: unknown): Error {
  return unsupported(describeComponent('pre-tokenizer', spec), `pre-tokenizers that load: ${SUPPORTED}; BertPreTokenizer, UnicodeScripts, CharDelimiterSplit and others are not implemented`);
}
