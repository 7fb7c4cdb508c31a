import type { BpeTokenizer } from './bpe-tokenizer.js';
import { isRecord } from './internal/is-record.js';
import { TOKENIZER_FORMAT } from './tokenizer-file.js';

/** What `trainer tokenizer inspect` prints about a tokenizer. */
export interface TokenizerDescription {
  /** trainer-bpe (our own file), byte-level-bpe (GPT-2, Llama 3, Qwen) or sentencepiece-bpe (Llama 2, Mistral, Gemma: characters with byte fallback). */
  kind: 'trainer-bpe' | 'byte-level-bpe' | 'sentencepiece-bpe' | 'sentencepiece-unigram';
  vocabSize: number;
  /** Added tokens Hugging Face marks special (and trainer's '<|endoftext|>'): text -> id. */
  specialTokens: Record<string, number>;
  /** Added tokens that are not special (matched in text too). */
  addedTokens: number;
  eotToken: number;
  /** The pipeline, stage by stage: e.g. pre-tokenizer "Sequence[Split, ByteLevel]". */
  components: { normalizer: string; preTokenizer: string; model: string; postProcessor: string; decoder: string };
  /** SHA-256 of the tokenizer's JSON form (what token files and checkpoints record). */
  hash: string;
}

/** The kind, size, special tokens, component chain and hash of a loaded tokenizer (not one rebuilt from a thread form). */
export function describeTokenizer(tokenizer: BpeTokenizer): TokenizerDescription {
  const json = tokenizer.toJSON() as unknown as Record<string, unknown>;
  const base = { vocabSize: tokenizer.vocabSize, specialTokens: Object.fromEntries(tokenizer.specialTokens), eotToken: tokenizer.eotToken, hash: tokenizer.hash };
  if (json.format === TOKENIZER_FORMAT) {
    return {
      ...base,
      kind: 'trainer-bpe',
      addedTokens: 0,
      components: { normalizer: 'none', preTokenizer: `Regex(${JSON.stringify(tokenizer.pattern)})`, model: `BPE(bytes, ${tokenizer.merges.length} merges)`, postProcessor: 'none', decoder: 'bytes' },
    };
  }
  const model = isRecord(json.model) ? json.model : {};
  const charLevel = !chain(json.pre_tokenizer).includes('ByteLevel');
  const options = [charLevel ? 'characters' : 'bytes', `${tokenizer.merges.length} merges`];
  if (model.byte_fallback === true) options.push('byte_fallback');
  if (typeof model.unk_token === 'string') options.push(`unk ${JSON.stringify(model.unk_token)}${model.fuse_unk === true ? ' fused' : ''}`);
  if (model.ignore_merges === true) options.push('ignore_merges');
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  const unigram = model.type === 'Unigram';
  if (unigram) options.splice(0, 2, 'characters', `${Array.isArray(model.vocab) ? model.vocab.length : 0} pieces`);
  return {
    ...base,
    kind: unigram ? 'sentencepiece-unigram' : charLevel ? 'sentencepiece-bpe' : 'byte-level-bpe',
    addedTokens: added.filter((t) => isRecord(t) && t.special !== true).length,
    components: {
      normalizer: chain(json.normalizer),
      preTokenizer: chain(json.pre_tokenizer),
      model: `${unigram ? 'Unigram' : 'BPE'}(${options.join(', ')})`,
      postProcessor: chain(json.post_processor),
      decoder: chain(json.decoder),
    },
  };
}

/** A component as its type and, for sequences, its parts: "Sequence[Replace, ByteFallback, Fuse, Strip]". */
function chain(component: unknown): string {
  if (!isRecord(component)) return 'none';
  const inner = [component.normalizers, component.pretokenizers, component.processors, component.decoders].find(Array.isArray) as unknown[] | undefined;
  return inner ? `${String(component.type)}[${inner.map(chain).join(', ')}]` : String(component.type);
}
