import { byteLevelToBytes } from './byte-level-alphabet.js';
import { describeComponent, patternOf, stringOption, unsupported } from './hf-component-errors.js';
import { onigurumaToJs } from './hf-split-regex.js';
import { isRecord } from './internal/is-record.js';

/** A Hugging Face decoder stage: token strings in, strings out (`decode_chain`); the result is joined. */
export type Decoder = (tokens: string[]) => string[];

const SUPPORTED = 'ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence';

/**
 * The decoder a tokenizer.json `decoder` describes, stage by stage as Hugging Face tokenizers runs
 * it. Without one Hugging Face joins the tokens with spaces: undefined here, see decodeTokens.
 */
export function buildDecoder(spec: unknown): Decoder | undefined {
  if (spec === null || spec === undefined) return undefined;
  if (!isRecord(spec)) throw unsupportedDecoder(spec);
  switch (spec.type) {
    case 'ByteLevel':
      return byteLevelDecoder;
    case 'Metaspace': {
      const replacement = stringOption('decoder Metaspace', spec, 'replacement', '▁');
      const scheme = typeof spec.prepend_scheme === 'string' ? spec.prepend_scheme : spec.add_prefix_space === false ? 'never' : 'always';
      // As Hugging Face: in the first token every replacement character goes (unless the scheme is "never"); elsewhere each is a space.
      return (tokens) => tokens.map((token, i) => token.replaceAll(replacement, i === 0 && scheme !== 'never' ? '' : ' '));
    }
    case 'Replace': {
      const content = stringOption('decoder Replace', spec, 'content');
      const pattern = patternOf('decoder Replace', spec.pattern);
      if ('literal' in pattern) return (tokens) => tokens.map((t) => t.replaceAll(pattern.literal, content));
      const regex = new RegExp(onigurumaToJs(pattern.regex), 'gu');
      return (tokens) => tokens.map((t) => t.replace(regex, () => content));
    }
    case 'ByteFallback':
      return byteFallbackDecoder;
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = stringOption('decoder Strip', spec, 'content', ' ');
      const start = typeof spec.start === 'number' ? spec.start : 0;
      const stop = typeof spec.stop === 'number' ? spec.stop : 0;
      return (tokens) => tokens.map((t) => stripToken(t, content, start, stop));
    }
    case 'Sequence': {
      if (!Array.isArray(spec.decoders)) throw unsupportedDecoder(spec);
      const stages = spec.decoders.map(buildDecoder).filter((d): d is Decoder => d !== undefined);
      return (tokens) => stages.reduce((t, stage) => stage(t), tokens);
    }
    default:
      throw unsupportedDecoder(spec);
  }
}

/** Text of token strings as Hugging Face's `decode`: the decoder chain joined, or the tokens joined by spaces without a decoder. */
export function decodeTokens(decoder: Decoder | undefined, tokens: string[]): string {
  return decoder ? decoder(tokens).join('') : tokens.join(' ');
}

const lossyUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8 = new TextEncoder();

/** All tokens as one string: each token's byte-level characters as bytes (a token with any other character: its UTF-8), decoded lossily. */
function byteLevelDecoder(tokens: string[]): string[] {
  const parts = tokens.map((t) => byteLevelToBytes(t) ?? utf8.encode(t));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    bytes.set(p, offset);
    offset += p.length;
  }
  return [lossyUtf8.decode(bytes)];
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** Runs of `<0xXX>` tokens become their UTF-8 text; a run that is not valid UTF-8 becomes one U+FFFD per byte (as Hugging Face). */
function byteFallbackDecoder(tokens: string[]): string[] {
  const out: string[] = [];
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(run)));
    } catch {
      for (let i = 0; i < run.length; i++) out.push('\uFFFD');
    }
    run = [];
  };
  for (const token of tokens) {
    const m = token.length === 6 ? BYTE_TOKEN.exec(token) : null;
    if (m) run.push(Number.parseInt(m[1], 16));
    else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

/** Up to `start` leading and `stop` trailing `content` characters removed. */
function stripToken(token: string, content: string, start: number, stop: number): string {
  const chars = [...token];
  let head = 0;
  while (head < start && head < chars.length && chars[head] === content) head++;
  let tail = 0;
  while (tail < stop && tail < chars.length - head && chars[chars.length - 1 - tail] === content) tail++;
  return chars.slice(head, chars.length - tail).join('');
}

function unsupportedDecoder(spec: unknown): Error {
  return unsupported(describeComponent('decoder', spec), `decoders that load: ${SUPPORTED}; WordPiece, BPEDecoder, CTC and others are not implemented`);
}
