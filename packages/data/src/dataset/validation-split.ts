import { createHash } from 'node:crypto';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';

/**
 * The train/validation split of `trainer data prepare`, by document content: a document is held
 * out iff validationKey(its text, as UTF-8) < validationThreshold(valFraction). The key is the first
 * 4 bytes of the text's SHA-256 read as a big-endian u32, so the split depends on neither the order
 * of the documents, nor the thread count, nor where a run was resumed, and the same text always
 * lands on the same side (exact duplicates never straddle the split).
 */
export function validationKey(text: string | Uint8Array): number {
  // A string is hashed as UTF-8 (lone surrogates as U+FFFD, as TextEncoder writes them).
  const hash = createHash('sha256');
  (typeof text === 'string' ? hash.update(text, 'utf8') : hash.update(text));
  return hash.digest().readUInt32BE(0);
}

/** floor(valFraction * 2^32): the keys below it are validation. valFraction must be in [0, 0.5]. */
export function validationThreshold(valFraction: number): number {
  if (!(valFraction >= 0 && valFraction <= 0.5)) {
    throw new TrainerError(DataErrorCode.DATA_OPTION, `validation fraction ${valFraction} is outside [0, 0.5]`, { hint: 'use e.g. 0.0005 to hold out 0.05% of the documents, or 0 for none' });
  }
  return Math.floor(valFraction * 2 ** 32);
}

/** Default --val-fraction: 0.05% of the documents (millions of documents give thousands held out). */
export const DEFAULT_DATASET_VAL_FRACTION = 0.0005;
