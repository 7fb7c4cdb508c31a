import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { writeFileAtomic } from './internal/atomic-write.js';
import { mergeWord } from './internal/bpe-merge.js';
import { pairKey } from './internal/pair-key.js';
import { forEachPretoken } from './pretokenize.js';
import {
  BYTE_TOKENS,
  EOT_TEXT,
  type TokenizerFile,
  type TokenizerSpec,
  formatTokenizerFile,
  parseTokenizerFile,
  toTokenizerFile,
  tokenizerHash,
} from './tokenizer-file.js';

/** Pre-token -> ids cache entries kept before the cache is cleared (bounds memory on huge corpora). */
export const ENCODE_CACHE_MAX_ENTRIES = 200_000;
/** Pre-tokens longer than this (in UTF-16 units) are encoded every time rather than cached. */
export const ENCODE_CACHE_MAX_WORD_LENGTH = 256;

export interface EncodeOptions {
  /**
   * When true, occurrences of special token texts (e.g. '<|endoftext|>') in the input become their
   * special ids. Default false: the input is plain text and such strings are encoded as bytes, so
   * user text can never inject a document separator.
   */
  allowSpecial?: boolean;
}

/**
 * A byte-level BPE tokenizer (GPT-2 scheme). Ids 0..255 are bytes, 256 + r is the token made by
 * merge r, then special tokens. Any string round-trips: encode works on the UTF-8 bytes, so
 * decode(encode(s)) equals TextDecoder(TextEncoder(s)) (which is s unless s has lone surrogates).
 *
 * Build one with trainBpe or BpeTokenizer.fromJSON / load.
 */
export class BpeTokenizer {
  /** 256 byte tokens + merges + special tokens. */
  readonly vocabSize: number;
  /** Id of '<|endoftext|>', the document separator. */
  readonly eotToken: number;
  /** SHA-256 (hex) of the tokenizer's content: keys token caches, checks model/tokenizer matches. */
  readonly hash: string;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  /** Special token text -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Pre-tokenization regex source. */
  readonly pattern: string;

  private readonly ranks = new Map<number, number>();
  private readonly tokenBytes: Uint8Array[] = [];
  private readonly regex: RegExp;
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  /** Validates `spec` like a loaded file (throws TRAINER_ERR_TOKENIZER_FORMAT when inconsistent). */
  constructor(spec: TokenizerSpec) {
    const file = toTokenizerFile(spec, tokenizerHash(spec));
    const valid = parseTokenizerFile(file);
    this.merges = valid.merges;
    this.pattern = valid.pattern;
    this.hash = file.hash;
    this.vocabSize = file.vocabSize;
    this.specialTokens = new Map(Object.entries(file.specialTokens));
    this.eotToken = file.specialTokens[EOT_TEXT];
    this.regex = new RegExp(this.pattern, 'gu');
    for (let b = 0; b < BYTE_TOKENS; b++) this.tokenBytes.push(Uint8Array.of(b));
    this.merges.forEach(([left, right], r) => {
      this.ranks.set(pairKey(left, right), r);
      const a = this.tokenBytes[left];
      const b = this.tokenBytes[right];
      const bytes = new Uint8Array(a.length + b.length);
      bytes.set(a);
      bytes.set(b, a.length);
      this.tokenBytes.push(bytes);
    });
    for (const text of valid.specialTokens) this.tokenBytes.push(this.encoder.encode(text));
  }

  /** Token ids of `text`. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (!opts.allowSpecial || this.specialTokens.size === 0) {
      this.encodeOrdinary(text, out);
      return out;
    }
    // Split on special token texts (longest first so one that contains another wins).
    const specials = [...this.specialTokens.keys()].sort((a, b) => b.length - a.length);
    const splitter = new RegExp(specials.map(escapeRegExp).join('|'), 'g');
    let end = 0;
    for (const match of text.matchAll(splitter)) {
      this.encodeOrdinary(text.slice(end, match.index), out);
      out.push(this.specialTokens.get(match[0]) as number);
      end = match.index + match[0].length;
    }
    this.encodeOrdinary(text.slice(end), out);
    return out;
  }

  /** Bytes of the tokens, concatenated. Throws TRAINER_ERR_TOKEN_ID_RANGE for an id outside the vocabulary. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i], i).length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.tokenBytes[ids[i]];
      out.set(bytes, offset);
      offset += bytes.length;
    }
    return out;
  }

  /**
   * Text of the tokens. Byte sequences that are not valid UTF-8 (a sample cut inside a multi-byte
   * character, or a model emitting stray bytes) decode to U+FFFD instead of throwing. For text
   * produced token by token, use createStreamDecoder, which holds back an incomplete tail.
   */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids));
  }

  /**
   * A decoder for generated text: push ids as they come and get the text that is complete so far;
   * a multi-byte character split across tokens is emitted once its last byte arrives.
   */
  createStreamDecoder(): { push(ids: ArrayLike<number>): string; flush(): string } {
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    return {
      push: (ids) => decoder.decode(this.decodeBytes(ids), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  /** Versioned JSON form (see TokenizerFile). */
  toJSON(): TokenizerFile {
    return toTokenizerFile({ merges: this.merges, specialTokens: [...this.specialTokens.keys()], pattern: this.pattern }, this.hash);
  }

  /** Parses a tokenizer file's JSON; foreign/old/corrupt content throws TRAINER_ERR_TOKENIZER_FORMAT. */
  static fromJSON(obj: unknown): BpeTokenizer {
    return new BpeTokenizer(parseTokenizerFile(obj));
  }

  /** Writes the tokenizer as JSON (atomically; creates the parent directory). */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, [this.encoder.encode(formatTokenizerFile(this.toJSON()))]);
  }

  static async load(path: string): Promise<BpeTokenizer> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new TrainerError(DataErrorCode.TOKENIZER_NOT_FOUND, `cannot read tokenizer file ${path}: ${(err as Error).message}`, {
        hint: 'check the path, or train a tokenizer with `trainer tokenizer train --vocab 2048`',
        cause: err,
        details: { path },
      });
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `tokenizer file ${path} is not valid JSON: ${(err as Error).message}`, {
        hint: 'the file is damaged or is not a tokenizer: retrain it with `trainer tokenizer train`',
        cause: err,
        details: { path },
      });
    }
    try {
      return BpeTokenizer.fromJSON(obj);
    } catch (err) {
      if (err instanceof TrainerError) {
        throw new TrainerError(err.code, `${path}: ${err.message}`, { hint: err.hint, cause: err, details: { path } });
      }
      throw err;
    }
  }

  private bytesOf(id: number, index: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
    if (bytes === undefined) {
      throw new TrainerError(DataErrorCode.TOKEN_ID_RANGE, `token id ${id} at index ${index} is outside the vocabulary [0, ${this.vocabSize})`, {
        hint: 'the ids come from a different tokenizer or model: use the tokenizer the model was trained with',
        details: { id, index, vocabSize: this.vocabSize },
      });
    }
    return bytes;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    if (text.length === 0) return;
    forEachPretoken(text, this.regex, (word) => {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = mergeWord(this.encoder.encode(word), this.ranks);
        if (word.length <= ENCODE_CACHE_MAX_WORD_LENGTH) {
          if (this.cache.size >= ENCODE_CACHE_MAX_ENTRIES) this.cache.clear();
          this.cache.set(word, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
