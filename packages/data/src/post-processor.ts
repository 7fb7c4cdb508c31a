import { describeComponent, malformed, unsupported } from './hf-component-errors.js';
import { isRecord } from './internal/is-record.js';

/** What `encode(text, add_special_tokens=True)` puts around a single sequence's ids. */
export interface SpecialTokenTemplate {
  prefix: number[];
  suffix: number[];
}

const SUPPORTED = 'TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence';

/**
 * The single-sequence template of a tokenizer.json `post_processor`, as Hugging Face applies it
 * when asked to add special tokens (Llama 2: `<s>` before; BERT/RoBERTa: cls before, sep after).
 * ByteLevel only trims offsets, so adds nothing. Pairs of sequences are not encoded here.
 */
export function buildPostProcessor(spec: unknown): SpecialTokenTemplate {
  const empty: SpecialTokenTemplate = { prefix: [], suffix: [] };
  if (spec === null || spec === undefined) return empty;
  if (!isRecord(spec)) throw unsupportedPostProcessor(spec);
  switch (spec.type) {
    case 'ByteLevel':
      return empty;
    case 'TemplateProcessing':
      return templateOf(spec);
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const idOf = (key: string): number => {
        const pair = spec[key];
        if (!Array.isArray(pair) || typeof pair[1] !== 'number') throw malformed(`post-processor ${String(spec.type)} "${key}" is ${JSON.stringify(pair)}, expected ["token", id]`);
        return pair[1];
      };
      return { prefix: [idOf('cls')], suffix: [idOf('sep')] };
    }
    case 'Sequence': {
      if (!Array.isArray(spec.processors)) throw unsupportedPostProcessor(spec);
      // Each processor wraps what the ones before it made.
      return spec.processors.map(buildPostProcessor).reduce((acc, p) => ({ prefix: [...p.prefix, ...acc.prefix], suffix: [...acc.suffix, ...p.suffix] }), empty);
    }
    default:
      throw unsupportedPostProcessor(spec);
  }
}

function templateOf(spec: Record<string, unknown>): SpecialTokenTemplate {
  const single = spec.single;
  const specials = isRecord(spec.special_tokens) ? spec.special_tokens : {};
  if (!Array.isArray(single)) throw malformed('post-processor TemplateProcessing has no "single" template');
  const out: SpecialTokenTemplate = { prefix: [], suffix: [] };
  let seenSequence = false;
  for (const piece of single) {
    if (isRecord(piece) && isRecord(piece.Sequence)) {
      seenSequence = true;
      continue;
    }
    const name = isRecord(piece) && isRecord(piece.SpecialToken) ? piece.SpecialToken.id : undefined;
    const entry = typeof name === 'string' ? specials[name] : undefined;
    if (!isRecord(entry) || !Array.isArray(entry.ids) || !entry.ids.every((id) => Number.isInteger(id))) {
      throw malformed(`post-processor TemplateProcessing: template piece ${JSON.stringify(piece)} names no special token with ids`);
    }
    (seenSequence ? out.suffix : out.prefix).push(...(entry.ids as number[]));
  }
  return out;
}

function unsupportedPostProcessor(spec: unknown): Error {
  return unsupported(describeComponent('post-processor', spec), `post-processors that load: ${SUPPORTED}`);
}
