import { describeComponent, patternOf, stringOption, unsupported } from './hf-component-errors.js';
import { onigurumaToJs } from './hf-split-regex.js';
import { isRecord } from './internal/is-record.js';

/** A Hugging Face normalizer: text in, text out (applied to the text between added tokens). */
export type Normalizer = (text: string) => string;

const SUPPORTED = 'NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Lowercase, Sequence';

/**
 * The normalizer a tokenizer.json `normalizer` describes, as Hugging Face tokenizers applies it,
 * or undefined for none. Components: Unicode forms (NFC, NFD, NFKC, NFKD), Prepend (SentencePiece's
 * leading '▁'), Replace (string or regex, every occurrence), Strip (Unicode whitespace at either
 * end), Lowercase, Sequence. Others throw TRAINER_ERR_TOKENIZER_UNSUPPORTED naming the component.
 */
export function buildNormalizer(spec: unknown): Normalizer | undefined {
  if (spec === null || spec === undefined) return undefined;
  if (!isRecord(spec)) throw unsupportedNormalizer(spec);
  switch (spec.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = spec.type;
      return (text) => text.normalize(form);
    }
    case 'Lowercase':
      return (text) => text.toLowerCase();
    case 'Prepend': {
      const prefix = stringOption('normalizer Prepend', spec, 'prepend');
      return (text) => (text.length > 0 ? prefix + text : text); // Hugging Face prepends to non-empty text only
    }
    case 'Replace': {
      const content = stringOption('normalizer Replace', spec, 'content');
      const pattern = patternOf('normalizer Replace', spec.pattern);
      if ('literal' in pattern) return (text) => text.replaceAll(pattern.literal, content);
      const regex = new RegExp(onigurumaToJs(pattern.regex), 'gu');
      return (text) => text.replace(regex, () => content);
    }
    case 'Strip': {
      const left = spec.strip_left !== false;
      const right = spec.strip_right !== false;
      return (text) => {
        let out = left ? text.replace(LEADING_SPACE, '') : text;
        if (right) out = out.replace(TRAILING_SPACE, '');
        return out;
      };
    }
    case 'Sequence': {
      if (!Array.isArray(spec.normalizers)) throw unsupportedNormalizer(spec);
      const steps = spec.normalizers.map(buildNormalizer).filter((n): n is Normalizer => n !== undefined);
      return (text) => steps.reduce((t, step) => step(t), text);
    }
    default:
      throw unsupportedNormalizer(spec);
  }
}

/** Rust's `char::is_whitespace`: Unicode White_Space. */
const LEADING_SPACE = /^\p{White_Space}+/u;
const TRAILING_SPACE = /\p{White_Space}+$/u;

function unsupportedNormalizer(spec: unknown): Error {
  return unsupported(describeComponent('normalizer', spec), `normalizers that load: ${SUPPORTED}; BertNormalizer, Precompiled (SentencePiece's charsmap) and others are not implemented`);
}
