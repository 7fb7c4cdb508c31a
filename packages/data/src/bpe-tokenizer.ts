import { TrainerError } from '@trainer/errors';
import { type AddedToken, AddedTokenMatcher } from './added-tokens.js';
import { type CharSymbolOptions, byteFallbackIds, charSymbols } from './bpe-byte-fallback.js';
import { type BpeModel, type TokenizerJson, modelFromCheckedSpec, modelFromTrainerSpec } from './bpe-model.js';
import { bytesToByteLevel } from './byte-level-alphabet.js';
import { DataErrorCode } from './codes.js';
import { type Decoder, buildDecoder, decodeTokens } from './decoders.js';
import { tokenizerJsonFromGpt2Files, type Gpt2VocabOptions } from './gpt2-vocab-files.js';
import { looksLikeHfTokenizerJson, modelFromHfTokenizerJson } from './hf-tokenizer-json.js';
import { type BpeThreadForm, modelOfThreadForm, threadFormOf } from './bpe-thread-form.js';
import { writeFileAtomic } from './internal/atomic-write.js';
import { type MergeIds, mergeSymbols, mergeWord } from './internal/bpe-merge.js';
import { pairKey } from './internal/pair-key.js';
import { type Normalizer, buildNormalizer } from './normalizers.js';
import { type SpecialTokenTemplate, buildPostProcessor } from './post-processor.js';
import { type PreTokenizer, buildPreTokenizer } from './pre-tokenizers.js';
import { UnigramModel } from './unigram-model.js';
import { forEachPretoken } from './pretokenize.js';
import { TOKENIZER_FORMAT, type TokenizerFile, type TokenizerSpec, formatTokenizerFile, parseTokenizerFile } from './tokenizer-file.js';
import { readTokenizerJson } from './tokenizer-source.js';

/** Token strings for decoder chains: Hugging Face's `id_to_token` (never invalid UTF-8: token texts are strings). */
const TOKEN_TEXT = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Pre-token -> ids cache entries kept before the cache is cleared (bounds memory on huge corpora). */
export const ENCODE_CACHE_MAX_ENTRIES = 200_000;
/** Pre-tokens longer than this (in UTF-16 units) are encoded every time rather than cached. */
export const ENCODE_CACHE_MAX_WORD_LENGTH = 256;

export interface EncodeOptions {
  /**
   * When true, occurrences of special token texts (e.g. '<|endoftext|>') in the input become their
   * special ids; when false they are encoded as the plain text they are. Default: false for
   * trainer's own tokenizers, so user text can never inject a document separator; true for
   * tokenizers loaded from Hugging Face or GPT-2 files, as Hugging Face does. Added tokens that
   * are not special are always matched (they are part of such a vocabulary).
   */
  allowSpecial?: boolean;
  /**
   * Put the post-processor's special tokens around the text (Hugging Face's
   * `add_special_tokens=True`: Llama 2's `<s>` in front). Default false.
   */
  addSpecialTokens?: boolean;
}

export type { BpeThreadForm } from './bpe-thread-form.js';

/**
 * A tokenizer of the BPE family: byte-level BPE (GPT-2 scheme: trainer's own, GPT-2, Llama 3,
 * Qwen), SentencePiece-style BPE over characters with byte fallback (Llama 2, Mistral, Gemma), and
 * Unigram models, each with its Hugging Face normalizers, pre-tokenizers, post-processor and
 * decoders. Byte-level models round-trip any string: encode works on the UTF-8 bytes, so
 * decode(encode(s)) equals TextDecoder(TextEncoder(s)) (which is s unless s has lone surrogates,
 * or a normalizer changes it).
 *
 * Ids: trainer's own tokenizers (trainBpe, tokenizer-file.ts) have bytes 0..255, 256 + r for the
 * token made by merge r, then the special tokens. Tokenizers loaded from a Hugging Face
 * tokenizer.json or GPT-2's vocab.json + merges.txt keep the file's ids and encode exactly as
 * Hugging Face tokenizers does (`encode(text, add_special_tokens=False)`, or True with
 * EncodeOptions.addSpecialTokens), and decode as its `decode(ids)`: GPT-2's '<|endoftext|>' is
 * 50256, and the ids equal tiktoken's.
 *
 * Build one with trainBpe, BpeTokenizer.load (any of those files, or a folder of them),
 * BpeTokenizer.fromJSON or BpeTokenizer.fromGpt2Files.
 */
export class BpeTokenizer {
  /** 1 + the largest id: 256 byte tokens + merges + special tokens for trainer's own. */
  readonly vocabSize: number;
  /** Id of the document separator: '<|endoftext|>' (for a Hugging Face file without it, see HF_EOT_CANDIDATES). */
  readonly eotToken: number;
  /** SHA-256 (hex) of the tokenizer's JSON form: keys token caches, checks model/tokenizer matches. */
  readonly hash: string;
  /** merges[r] = [left, right]: the ids merge r joins. */
  readonly merges: ReadonlyArray<readonly [number, number]>;
  /** Special token text -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Pre-tokenization regex source ('' when a Hugging Face file turns the regex off). */
  readonly pattern: string;

  private readonly model: BpeModel;
  private readonly ranks = new Map<number, number>();
  private readonly mergeIds: MergeIds | undefined;
  private readonly tokenBytes: Array<Uint8Array | undefined>;
  private readonly regex: RegExp | undefined;
  private readonly addPrefixSpace: boolean;
  private readonly normalizer: Normalizer | undefined;
  /** Set when the pre-tokenizer is not the byte-level fast path (`regex`, `addPrefixSpace`). */
  private readonly preTokenizer: PreTokenizer | undefined;
  /** Set when decoding is not byte-level (token bytes concatenated). */
  private readonly decoder: Decoder | undefined;
  private readonly template: SpecialTokenTemplate;
  /** Set for char-level (SentencePiece-style) models. */
  private readonly charOptions: CharSymbolOptions | undefined;
  /** Set for Unigram models (pieces by Viterbi instead of merges). */
  private readonly unigram: UnigramModel | undefined;
  private readonly wholeWords: ReadonlyMap<string, number> | undefined;
  private readonly allowSpecialByDefault: boolean;
  /** Added tokens matched in the raw text, then (after normalization) those matched in normalized text. */
  private readonly rawAddedTokens: AddedTokenMatcher;
  private readonly normalizedAddedTokens: AddedTokenMatcher;
  private readonly jsonForm: () => TokenizerJson;
  private readonly addedTokens: readonly AddedToken[];
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  /**
   * From one of trainer's own specs (validated like a loaded file: TRAINER_ERR_TOKENIZER_FORMAT when
   * inconsistent), or from a model built by a loader (Hugging Face files).
   */
  constructor(spec: TokenizerSpec | BpeModel) {
    const model = 'tokenBytes' in spec ? spec : modelFromTrainerSpec(spec);
    this.model = model;
    this.merges = model.merges;
    model.merges.forEach(([left, right], r) => this.ranks.set(pairKey(left, right), r)); // a repeated pair keeps its last rank, as Hugging Face
    this.mergeIds = model.ids;
    this.tokenBytes = model.tokenBytes;
    this.vocabSize = model.vocabSize;
    this.eotToken = model.eotToken;
    this.hash = model.hash;
    this.pattern = model.pattern ?? '';
    this.regex = model.pattern === null ? undefined : new RegExp(model.pattern, 'gu');
    this.addPrefixSpace = model.addPrefixSpace;
    this.normalizer = buildNormalizer(model.hf?.normalizer ?? null);
    this.preTokenizer = model.hf?.preTokenizer ? buildPreTokenizer(model.hf.preTokenizer) : undefined;
    // Byte-level models with the ByteLevel decoder decode on the fast path (token bytes); any other
    // Hugging Face model runs its decoder chain, or joins the tokens with spaces when it has none.
    const decoder = model.hf?.decoder ?? null;
    const fastDecode = !model.hf || (decoder?.type === 'ByteLevel' && !model.hf.charLevel);
    this.decoder = fastDecode ? undefined : buildDecoder(decoder) ?? ((tokens) => [tokens.join(' ')]);
    this.template = buildPostProcessor(model.hf?.postProcessor ?? null);
    this.unigram = model.hf?.unigramScores && model.vocab
      ? new UnigramModel(unigramPieces(model.vocab, model.hf.unigramScores.length), model.hf.unigramScores, model.hf.unkId, model.hf.byteFallback)
      : undefined;
    this.charOptions = model.hf?.charLevel && model.vocab
      ? { vocab: model.vocab, byteTokenIds: model.hf.byteFallback ? byteFallbackIds(model.vocab) : undefined, unkId: model.hf.unkId, fuseUnk: model.hf.fuseUnk }
      : undefined;
    this.wholeWords = model.wholeWords;
    this.allowSpecialByDefault = model.allowSpecialByDefault;
    this.specialTokens = new Map(model.addedTokens.filter((t) => t.special).map((t) => [t.content, t.id]));
    this.rawAddedTokens = new AddedTokenMatcher(model.addedTokens.filter((t) => !t.normalized));
    this.normalizedAddedTokens = new AddedTokenMatcher(model.addedTokens.filter((t) => t.normalized), (t) => this.normalize(t.content));
    this.jsonForm = model.toJSON;
    this.addedTokens = model.addedTokens;
  }

  /**
   * The model as typed arrays and plain data for another thread: fromThreadForm of it encodes
   * exactly as this tokenizer does (same ids, same hash), without parsing or hashing a file.
   */
  threadForm(): BpeThreadForm {
    return threadFormOf(this.model);
  }

  /**
   * The tokenizer of a threadForm (made in another thread). It encodes and decodes as the original;
   * toJSON and save are not available (they throw): save the original.
   */
  static fromThreadForm(form: BpeThreadForm): BpeTokenizer {
    return new BpeTokenizer(modelOfThreadForm(form));
  }

  /** Token ids of `text`. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    const allowSpecial = opts.allowSpecial ?? this.allowSpecialByDefault;
    const pushId = (id: number): void => {
      out.push(id);
    };
    if (opts.addSpecialTokens) for (const id of this.template.prefix) out.push(id);
    // Hugging Face's order: added tokens in the raw text, normalize the rest, added tokens in that, then BPE.
    this.rawAddedTokens.split(text, allowSpecial, (raw, rawStart) => {
      this.normalizedAddedTokens.split(this.normalize(raw), allowSpecial, (piece, start) => this.encodeOrdinary(piece, rawStart === 0 && start === 0, out), pushId);
    }, pushId);
    if (opts.addSpecialTokens) for (const id of this.template.suffix) out.push(id);
    return out;
  }

  /** Bytes of the tokens, concatenated. Throws TRAINER_ERR_TOKEN_ID_RANGE for an id outside the vocabulary. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    if (this.decoder) return this.encoder.encode(this.decode(ids));
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i], i).length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.tokenBytes[ids[i]] as Uint8Array; // checked by bytesOf above
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
    if (this.decoder) {
      const tokens: string[] = [];
      for (let i = 0; i < ids.length; i++) tokens.push(TOKEN_TEXT.decode(this.bytesOf(ids[i], i)));
      return decodeTokens(this.decoder, tokens);
    }
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids));
  }

  /**
   * A decoder for generated text: push ids as they come and get the text that is complete so far;
   * a multi-byte character split across tokens is emitted once its last byte arrives.
   */
  createStreamDecoder(): { push(ids: ArrayLike<number>): string; flush(): string } {
    if (this.decoder) {
      // A decoder chain (Metaspace, Strip, ...) depends on the tokens around: decode everything so
      // far and emit what is new, holding back a trailing U+FFFD (a character whose bytes are not all here yet).
      const all: number[] = [];
      let emitted = 0;
      const next = (final: boolean): string => {
        let text = this.decode(all);
        if (!final) while (text.endsWith('\uFFFD')) text = text.slice(0, -1);
        const out = text.length > emitted ? text.slice(emitted) : '';
        emitted = Math.max(emitted, text.length);
        return out;
      };
      return {
        push: (ids) => {
          for (let i = 0; i < ids.length; i++) all.push(ids[i]);
          return next(false);
        },
        flush: () => next(true),
      };
    }
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    return {
      push: (ids) => decoder.decode(this.decodeBytes(ids), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  /**
   * JSON form: trainer's versioned file (see TokenizerFile) for its own tokenizers, the Hugging
   * Face tokenizer.json for loaded ones (for vocab.json + merges.txt, the equivalent tokenizer.json).
   * fromJSON of it gives back the same tokenizer, hash included.
   */
  toJSON(): TokenizerJson {
    return this.jsonForm();
  }

  /**
   * From a parsed JSON form: trainer's tokenizer file (foreign/old/corrupt content throws
   * TRAINER_ERR_TOKENIZER_FORMAT) or a Hugging Face tokenizer.json (byte-level BPE; other
   * components throw TRAINER_ERR_TOKENIZER_UNSUPPORTED naming the component).
   */
  static fromJSON(obj: unknown): BpeTokenizer {
    if (looksLikeHfTokenizerJson(obj) && obj.format !== TOKENIZER_FORMAT) return new BpeTokenizer(modelFromHfTokenizerJson(obj));
    // parseTokenizerFile checks the file and its hash; the constructor's modelFromTrainerSpec would
    // check (and hash) the same content twice more, which is most of the load time.
    return new BpeTokenizer(modelFromCheckedSpec(parseTokenizerFile(obj), (obj as TokenizerFile).hash));
  }

  /** From GPT-2's vocab.json (parsed) and merges.txt (text), as transformers' GPT2Tokenizer reads them. */
  static fromGpt2Files(vocab: unknown, mergesText: string, opts: Gpt2VocabOptions = {}): BpeTokenizer {
    return BpeTokenizer.fromJSON(tokenizerJsonFromGpt2Files(vocab, mergesText, opts));
  }

  /** Writes the tokenizer's JSON form (atomically; creates the parent directory). */
  async save(path: string): Promise<void> {
    const json = this.toJSON();
    const text = 'format' in json && json.format === TOKENIZER_FORMAT ? formatTokenizerFile(json as TokenizerFile) : JSON.stringify(json);
    await writeFileAtomic(path, [this.encoder.encode(text)]);
  }

  /**
   * Loads what `--tokenizer PATH` names: trainer's tokenizer file, a Hugging Face tokenizer.json,
   * GPT-2's vocab.json (with merges.txt beside it) or merges.txt, or a Hugging Face model folder
   * (its tokenizer.json, else vocab.json + merges.txt). See readTokenizerJson.
   */
  static async load(path: string): Promise<BpeTokenizer> {
    const obj = await readTokenizerJson(path);
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
    const bytes = Number.isInteger(id) && id >= 0 ? this.tokenBytes[id] : undefined;
    if (bytes === undefined) {
      throw new TrainerError(DataErrorCode.TOKEN_ID_RANGE, `token id ${id} at index ${index} is outside the vocabulary [0, ${this.vocabSize})`, {
        hint: 'the ids come from a different tokenizer or model: use the tokenizer the model was trained with',
        details: { id, index, vocabSize: this.vocabSize },
      });
    }
    return bytes;
  }

  private normalize(text: string): string {
    return this.normalizer ? this.normalizer(text) : text;
  }

  /** Text with no added token in it (`first`: it starts the input): pre-tokenize into words, merge each word's bytes or characters. */
  private encodeOrdinary(piece: string, first: boolean, out: number[]): void {
    if (piece.length === 0) return;
    if (this.preTokenizer) {
      this.preTokenizer(piece, first, (word) => this.encodeWordCached(word, out));
      return;
    }
    if (this.charOptions) {
      this.encodeWordCached(piece, out); // no pre-tokenizer: the piece is one word
      return;
    }
    const text = this.addPrefixSpace && piece[0] !== ' ' ? ` ${piece}` : piece;
    const encodeWord = (word: string): void => {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.mergeBytes(this.encoder.encode(word));
        if (word.length <= ENCODE_CACHE_MAX_WORD_LENGTH) {
          if (this.cache.size >= ENCODE_CACHE_MAX_ENTRIES) this.cache.clear();
          this.cache.set(word, ids);
        }
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    };
    if (this.regex) forEachPretoken(text, this.regex, encodeWord);
    else encodeWord(text);
  }

  /** encodeOrdinary's word step for the general path (any pre-tokenizer, byte- or char-level). */
  private encodeWordCached(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (ids === undefined) {
      if (this.unigram) ids = this.unigram.encode(word);
      else ids = this.charOptions ? this.mergeChars(word, this.charOptions) : this.mergeBytes(this.encoder.encode(word));
      if (word.length <= ENCODE_CACHE_MAX_WORD_LENGTH) {
        if (this.cache.size >= ENCODE_CACHE_MAX_ENTRIES) this.cache.clear();
        this.cache.set(word, ids);
      }
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  private mergeChars(word: string, opts: CharSymbolOptions): number[] {
    const whole = this.wholeWords?.get(word);
    return whole !== undefined ? [whole] : mergeSymbols(charSymbols(word, opts), this.ranks, this.mergeIds?.mergedIds);
  }

  private mergeBytes(bytes: Uint8Array): number[] {
    const whole = this.wholeWords?.get(bytesToByteLevel(bytes));
    return whole !== undefined ? [whole] : mergeWord(bytes, this.ranks, this.mergeIds);
  }
}

/** Piece text by id, from the vocabulary map (a piece listed twice keeps its first id there; the later id is never produced). */
function unigramPieces(vocab: ReadonlyMap<string, number>, count: number): string[] {
  const pieces: string[] = new Array<string>(count).fill('');
  for (const [piece, id] of vocab) pieces[id] = piece;
  return pieces;
}
