export { DataErrorCode } from './codes.js';
export { GPT2_PATTERN, HF_BYTE_LEVEL_PATTERN, pretokenize } from './pretokenize.js';
export {
  BYTE_TOKENS,
  EOT_TEXT,
  MAX_VOCAB_SIZE,
  TOKENIZER_FORMAT,
  TOKENIZER_FORMAT_VERSION,
  type TokenizerFile,
  type TokenizerSpec,
} from './tokenizer-file.js';
export { BpeTokenizer, ENCODE_CACHE_MAX_ENTRIES, ENCODE_CACHE_MAX_WORD_LENGTH, type EncodeOptions } from './bpe-tokenizer.js';
export type { TokenizerJson } from './bpe-model.js';
export { HF_EOT_CANDIDATES, type HfAddedToken, type HfComponent, type HfTokenizerJson } from './hf-tokenizer-json.js';
export { tokenizerJsonFromGpt2Files, type Gpt2VocabOptions } from './gpt2-vocab-files.js';
export { readTokenizerJson } from './tokenizer-source.js';
export { describeTokenizer, type TokenizerDescription } from './tokenizer-description.js';
export { looksLikeHfTokenizerJson } from './hf-tokenizer-json.js';
export { trainBpe, type TrainBpeOptions } from './bpe-train.js';
export { trainSentencePieceBpe, type TrainSentencePieceBpeOptions } from './sentencepiece-bpe-train.js';
export { byteLevelTokenizerJson } from './hf-tokenizer-writer.js';
export { BUILTIN_CORPORA, DEFAULT_CORPUS, type BuiltinCorpusName } from './builtin-corpora.js';
export { CORPUS_EXTENSIONS, CORPUS_MAX_FILE_BYTES } from './corpus-files.js';
export { CORPUS_MAX_TOTAL_BYTES, loadCorpus, type Corpus, type LoadCorpusOptions } from './corpus.js';
export {
  TOKEN_FILE_HEADER_BYTES,
  TOKEN_FILE_MAGIC,
  TOKEN_FILE_VERSION,
  readTokenFile,
  writeTokenFile,
  type TokenFile,
  type TokenFileMeta,
} from './token-file.js';
export type { TokenArray } from './internal/token-buffer.js';
export {
  DEFAULT_VAL_FRACTION,
  MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT,
  prepareTokens,
  type PrepareTokensOptions,
  type PreparedTokens,
  type TokenSplit,
} from './prepare-tokens.js';
export { BatchSampler, validationBatches, type BatchSamplerOptions, type MicroBatchSlice, type TokenBatch } from './batch-sampler.js';
export { loadTokenIdsFile, parseTokenIds, type LoadTokenIdsOptions } from './token-ids-file.js';
export { streamKey, uniformIndex } from './prng.js';
export {
  CHECKPOINT_INTERVAL_MS,
  DEFAULT_SHARD_BYTES,
  MIN_SHARD_BYTES,
  prepareDataset,
  type PrepareDatasetOptions,
  type PrepareDatasetResult,
  type PrepareProgressReport,
} from './dataset/prepare-dataset.js';
export { DEFAULT_MAX_OPEN_SHARDS, PreparedDataset, type PreparedDatasetOptions } from './dataset/prepared-dataset.js';
export {
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  MANIFEST_FILE,
  type DatasetManifest,
  type DatasetSplit,
  type ShardEntry,
  type SourceEntry,
  type SplitManifest,
} from './dataset/manifest.js';
export { INDEX_FILE_MAGIC, INDEX_FILE_VERSION, encodeShardHeader, parseIndexFile, shardFileName, shardSourceHash } from './dataset/shard-format.js';
export { DATASET_EXTENSIONS } from './dataset/sources.js';
export { DEFAULT_DATASET_VAL_FRACTION, validationKey, validationThreshold } from './dataset/validation-split.js';
