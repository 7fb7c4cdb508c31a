import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import type { BpeTokenizer } from './bpe-tokenizer.js';
import { DataErrorCode } from './codes.js';
import type { Corpus } from './corpus.js';
import { sha256Hex } from './internal/hash.js';
import { type TokenArray, TokenBuffer } from './internal/token-buffer.js';
import { TOKEN_FILE_VERSION, readTokenFile, writeTokenFile } from './token-file.js';

/** Train and validation token streams (documents separated by the eot token). */
export interface TokenSplit {
  train: TokenArray;
  val: TokenArray;
}

export interface PrepareTokensOptions {
  corpus: Corpus;
  tokenizer: BpeTokenizer;
  /** Folder for cached token files (created if missing); safe to share between processes. */
  cacheDir: string;
  /** Fraction held out for validation, in [0, 0.5]; default DEFAULT_VAL_FRACTION. */
  valFraction?: number;
  /** When given, both splits must hold at least one sequence: contextLength + 1 tokens. */
  contextLength?: number;
  log?: (msg: string) => void;
}

export interface PreparedTokens extends TokenSplit {
  /** The train token file; the val file is `valPath`. */
  cachePath: string;
  valPath: string;
  fromCache: boolean;
  /** How the split was made: whole documents at the end, or the last tokens when there are few documents. */
  splitBy: 'documents' | 'tokens';
}

/** Default validation fraction: 5% (Moby Dick: 7 of 139 chapters). */
export const DEFAULT_VAL_FRACTION = 0.05;
/** With at least this many documents the split holds out whole documents, else the last tokens. */
export const MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 20;
/** Bumped whenever the way tokens are laid out or split changes, so old caches are not reused. */
const SPLIT_RULE_VERSION = 1;

/**
 * Tokenizes a corpus once and caches the result. Layout: doc_0 <eot> doc_1 <eot> ... Held-out
 * split (deterministic): with >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT documents, the last
 * round(n * valFraction) documents (at least one); otherwise the last floor(tokens * valFraction)
 * tokens. Cache key = corpus content hash + tokenizer hash + split settings + file version; a
 * cached file that is damaged, of another version or for other inputs is rebuilt.
 */
export async function prepareTokens(opts: PrepareTokensOptions): Promise<PreparedTokens> {
  const { corpus, tokenizer, cacheDir } = opts;
  const log = opts.log ?? (() => undefined);
  const valFraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  if (!(valFraction >= 0 && valFraction <= 0.5)) {
    throw new TrainerError(DataErrorCode.DATA_OPTION, `valFraction ${valFraction} is outside [0, 0.5]`, { hint: 'use e.g. 0.05 to hold out 5% for validation, or 0 for none' });
  }
  const splitBy = corpus.documents.length >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT ? 'documents' : 'tokens';
  const key = sha256Hex(
    JSON.stringify({ file: TOKEN_FILE_VERSION, rule: SPLIT_RULE_VERSION, corpus: corpus.contentHash, tokenizer: tokenizer.hash, valFraction, splitBy }),
  ).slice(0, 16);
  const base = join(cacheDir, `${corpus.name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 64)}-${key}`);
  const cachePath = `${base}.train.tok`;
  const valPath = `${base}.val.tok`;
  const meta = { tokenizerHash: tokenizer.hash, corpusHash: corpus.contentHash, vocabSize: tokenizer.vocabSize };

  let split = await readCached(cachePath, valPath, meta, log);
  const fromCache = split !== undefined;
  if (split === undefined) {
    const started = performance.now();
    split = tokenizeCorpus(corpus, tokenizer, valFraction, splitBy, log);
    const seconds = (performance.now() - started) / 1000;
    log(`tokenized ${corpus.name}: ${split.train.length} train + ${split.val.length} val tokens in ${seconds.toFixed(1)} s`);
    await writeTokenFile(cachePath, split.train, meta);
    await writeTokenFile(valPath, split.val, meta);
  } else {
    log(`token cache hit ${cachePath}: ${split.train.length} train + ${split.val.length} val tokens`);
  }
  if (opts.contextLength !== undefined) checkLongEnough(split, opts.contextLength, valFraction, corpus.name);
  return { ...split, cachePath, valPath, fromCache, splitBy };
}

async function readCached(trainPath: string, valPath: string, meta: { tokenizerHash: string; corpusHash: string }, log: (msg: string) => void): Promise<TokenSplit | undefined> {
  try {
    const train = await readTokenFile(trainPath);
    const val = await readTokenFile(valPath);
    for (const file of [train, val]) {
      if (file.meta.tokenizerHash !== meta.tokenizerHash || file.meta.corpusHash !== meta.corpusHash) {
        throw new TrainerError(DataErrorCode.TOKEN_FILE_MISMATCH, 'cached tokens were made from another corpus or tokenizer');
      }
    }
    return { train: train.tokens, val: val.tokens };
  } catch (err) {
    if (err instanceof TrainerError && err.code !== DataErrorCode.TOKEN_FILE_NOT_FOUND) log(`rebuilding token cache: ${err.message}`);
    return undefined;
  }
}

function tokenizeCorpus(corpus: Corpus, tokenizer: BpeTokenizer, valFraction: number, splitBy: 'documents' | 'tokens', log: (msg: string) => void): TokenSplit {
  const docs = corpus.documents;
  const valDocs = splitBy === 'documents' && valFraction > 0 ? Math.max(1, Math.round(docs.length * valFraction)) : 0;
  const trainDocs = docs.length - valDocs;
  const buffer = new TokenBuffer(tokenizer.vocabSize);
  const eot = [tokenizer.eotToken];
  let trainEnd = 0;
  let nextReport = 0.1;
  for (let d = 0; d < docs.length; d++) {
    if (d === trainDocs) trainEnd = buffer.length;
    buffer.push(tokenizer.encode(docs[d]));
    buffer.push(eot);
    if ((d + 1) / docs.length >= nextReport) {
      log(`tokenizing ${corpus.name}: ${d + 1}/${docs.length} documents, ${buffer.length} tokens`);
      nextReport += 0.1;
    }
  }
  if (splitBy === 'documents') {
    if (valDocs === 0) trainEnd = buffer.length;
  } else {
    trainEnd = buffer.length - Math.floor(buffer.length * valFraction);
  }
  return { train: buffer.slice(0, trainEnd), val: buffer.slice(trainEnd) };
}

function checkLongEnough(split: TokenSplit, contextLength: number, valFraction: number, name: string): void {
  if (!Number.isSafeInteger(contextLength) || contextLength < 1) {
    throw new TrainerError(DataErrorCode.DATA_OPTION, `contextLength ${contextLength} must be a positive integer`, { hint: 'pass the model context length, e.g. 128' });
  }
  const need = contextLength + 1;
  const short = (['train', 'val'] as const).filter((s) => (s === 'train' || valFraction > 0) && split[s].length < need);
  if (short.length > 0) {
    const sizes = `train ${split.train.length}, val ${split.val.length} tokens`;
    throw new TrainerError(DataErrorCode.DATA_TOO_SHORT, `corpus ${name} is too short for context ${contextLength}: the ${short.join(' and ')} split(s) need at least ${need} tokens (${sizes})`, {
      hint: 'use a smaller context length, a bigger corpus, or (for the val split) a larger valFraction',
      details: { contextLength, train: split.train.length, val: split.val.length },
    });
  }
}
