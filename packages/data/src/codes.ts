/**
 * Stable error codes thrown by @trainer/data. Scripts match on these strings, so a code is never
 * renamed or reused. Every error also carries a message naming the offending path or value and a
 * hint saying what to do.
 */
export const DataErrorCode = {
  /** A tokenizer JSON file is foreign, corrupt, or of an unsupported format version. */
  TOKENIZER_FORMAT: 'TRAINER_ERR_TOKENIZER_FORMAT',
  /**
   * A tokenizer file uses a component this build does not implement (a Hugging Face tokenizer.json
   * with a WordPiece or Unigram model, a Metaspace pre-tokenizer, a Lowercase normalizer, ...).
   */
  TOKENIZER_UNSUPPORTED: 'TRAINER_ERR_TOKENIZER_UNSUPPORTED',
  /** A tokenizer file does not exist or cannot be read. */
  TOKENIZER_NOT_FOUND: 'TRAINER_ERR_TOKENIZER_NOT_FOUND',
  /**
   * The input of `trainer tokenizer encode` / `decode` is missing or unreadable, or a line of it is
   * malformed (the message names file:line): not JSON, no string "text", no "ids" array of integers.
   */
  TOKENIZER_INPUT: 'TRAINER_ERR_TOKENIZER_INPUT',
  /** Tokenizer training options are invalid (vocabSize below 257 or above what the corpus supports). */
  TOKENIZER_VOCAB: 'TRAINER_ERR_TOKENIZER_VOCAB',
  /** A token id is outside the tokenizer's vocabulary. */
  TOKEN_ID_RANGE: 'TRAINER_ERR_TOKEN_ID_RANGE',
  /** A corpus path does not exist. */
  CORPUS_NOT_FOUND: 'TRAINER_ERR_CORPUS_NOT_FOUND',
  /** A corpus file exists but cannot be read. */
  CORPUS_UNREADABLE: 'TRAINER_ERR_CORPUS_UNREADABLE',
  /** A corpus has no non-empty document. */
  CORPUS_EMPTY: 'TRAINER_ERR_CORPUS_EMPTY',
  /** A corpus file has an unsupported extension, is not UTF-8, or a .jsonl line is malformed. */
  CORPUS_FORMAT: 'TRAINER_ERR_CORPUS_FORMAT',
  /** A corpus is larger than the configured limit. */
  CORPUS_TOO_LARGE: 'TRAINER_ERR_CORPUS_TOO_LARGE',
  /** A binary token file is foreign, of another version, or corrupt. */
  TOKEN_FILE_FORMAT: 'TRAINER_ERR_TOKEN_FILE_FORMAT',
  /** A binary token file is shorter than its header says. */
  TOKEN_FILE_TRUNCATED: 'TRAINER_ERR_TOKEN_FILE_TRUNCATED',
  /** A binary token file or token-ids file does not exist or cannot be read. */
  TOKEN_FILE_NOT_FOUND: 'TRAINER_ERR_TOKEN_FILE_NOT_FOUND',
  /** A token file was built with another tokenizer or corpus than the one in use. */
  TOKEN_FILE_MISMATCH: 'TRAINER_ERR_TOKEN_FILE_MISMATCH',
  /** A tokenizer or token file cannot be written (folder not writable, disk full, path under a file). */
  DATA_WRITE: 'TRAINER_ERR_DATA_WRITE',
  /** A token-ids JSON file (for `trainer eval --token-ids`) is malformed. */
  TOKEN_IDS_FORMAT: 'TRAINER_ERR_TOKEN_IDS_FORMAT',
  /** A token split is too short for one sequence of the requested context. */
  DATA_TOO_SHORT: 'TRAINER_ERR_DATA_TOO_SHORT',
  /** The global batch is not divisible by dpSize * microBatch. */
  BATCH_INDIVISIBLE: 'TRAINER_ERR_BATCH_INDIVISIBLE',
  /** A sampler or split option is out of range (negative step, rank >= dpSize, ...). */
  DATA_OPTION: 'TRAINER_ERR_DATA_OPTION',
  /** A prepared dataset's manifest, progress file or document index is missing, foreign, of another version, or inconsistent. */
  DATASET_FORMAT: 'TRAINER_ERR_DATASET_FORMAT',
  /** `trainer data prepare --out DIR` holds a dataset or an unfinished run for another tokenizer, other sources or settings. */
  DATASET_MISMATCH: 'TRAINER_ERR_DATASET_MISMATCH',
  /** A read outside a prepared dataset's split (negative, fractional, or past its last token). */
  DATASET_RANGE: 'TRAINER_ERR_DATASET_RANGE',
} as const;

export type DataErrorCode = (typeof DataErrorCode)[keyof typeof DataErrorCode];
