import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import { isRecord } from '../internal/is-record.js';

/**
 * `manifest.json` of a prepared dataset (`trainer data prepare`), format version 1. Written last,
 * atomically: a folder without it is not a dataset (an unfinished run has `progress.json`).
 *
 *   format, version     'trainer-dataset', 1
 *   datasetId           SHA-256 of the inputs (datasetIdentity): tokenizer, sources, split, shard size
 *   tokenizer           { hash (BpeTokenizer.hash), vocabSize, eotToken }
 *   dtype               'uint16' (vocabSize <= 65536) or 'uint32'; bytesPerToken 2 or 4
 *   valFraction         a document is held out iff validationKey(text) < floor(valFraction * 2^32)
 *   shardBytes          target size of a shard file (--shard-size); shards end on document ends
 *   splits.train/.val   { tokens, documents, shards: ShardEntry[] } in stream order
 *   totals              { tokens, documents, textBytes } over both splits
 *   sources             the inputs in reading order, with their sizes (compressed, as on disk)
 *   created             ISO time the manifest was written
 *
 * Every document is followed by the tokenizer's eot token (as prepareTokens lays out a corpus).
 * Token counts are JS numbers: exact up to 2^53.
 */
export const DATASET_FORMAT = 'trainer-dataset';
export const DATASET_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export type DatasetSplit = 'train' | 'val';
export const DATASET_SPLITS: readonly DatasetSplit[] = ['train', 'val'];

/** One shard: `train-00000.tok` (TRAINTOK token file) and its document index `train-00000.idx`. */
export interface ShardEntry {
  file: string;
  tokens: number;
  documents: number;
  /** Size of the .tok file, header included. */
  bytes: number;
  /** SHA-256 (hex) of the whole .tok file. */
  sha256: string;
  indexFile: string;
  indexBytes: number;
  indexSha256: string;
}

export interface SplitManifest {
  tokens: number;
  documents: number;
  shards: ShardEntry[];
}

/** A source as read: a file (path resolved), or a built-in corpus by name. */
export interface SourceEntry {
  /** Absolute path, or 'builtin:<name>'. */
  path: string;
  /** Bytes on disk (compressed size for .gz/.zst); UTF-8 bytes of the documents for a built-in corpus. */
  bytes: number;
  /** Modification time (ms) of a file; 0 for a built-in corpus. Part of the identity a resume checks. */
  mtimeMs: number;
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: number;
  datasetId: string;
  tokenizer: { hash: string; vocabSize: number; eotToken: number };
  dtype: 'uint16' | 'uint32';
  bytesPerToken: 2 | 4;
  valFraction: number;
  shardBytes: number;
  splits: Record<DatasetSplit, SplitManifest>;
  totals: { tokens: number; documents: number; textBytes: number };
  sources: SourceEntry[];
  created: string;
}

function manifestError(path: string, message: string, cause?: unknown): TrainerError {
  return new TrainerError(DataErrorCode.DATASET_FORMAT, `dataset manifest ${path}: ${message}`, {
    hint: 'pass a folder written by `trainer data prepare` (run it again with --overwrite if the folder is damaged)',
    cause,
    details: { path },
  });
}

const HEX64 = /^[0-9a-f]{64}$/;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkShard(entry: unknown, where: string, path: string): ShardEntry {
  if (!isRecord(entry)) throw manifestError(path, `${where} is not an object`);
  const e = entry as Record<string, unknown>;
  const ok = typeof e.file === 'string' && /^[A-Za-z0-9._-]+$/.test(e.file) && typeof e.indexFile === 'string' && /^[A-Za-z0-9._-]+$/.test(e.indexFile)
    && isCount(e.tokens) && isCount(e.documents) && isCount(e.bytes) && isCount(e.indexBytes)
    && typeof e.sha256 === 'string' && HEX64.test(e.sha256) && typeof e.indexSha256 === 'string' && HEX64.test(e.indexSha256);
  if (!ok) throw manifestError(path, `${where} lacks file, tokens, documents, bytes, sha256, indexFile, indexBytes or indexSha256 (or has a bad value)`);
  return e as unknown as ShardEntry;
}

/** Checks a parsed manifest (format, version, every field's type, split totals = sum of shards). */
export function parseManifest(obj: unknown, path: string): DatasetManifest {
  if (!isRecord(obj) || obj.format !== DATASET_FORMAT) throw manifestError(path, `not a trainer dataset manifest (format is not "${DATASET_FORMAT}")`);
  if (obj.version !== DATASET_FORMAT_VERSION) {
    throw new TrainerError(DataErrorCode.DATASET_FORMAT, `dataset manifest ${path}: format version ${String(obj.version)} is not supported (this build reads version ${DATASET_FORMAT_VERSION})`, {
      hint: Number(obj.version) > DATASET_FORMAT_VERSION ? 'the dataset was written by a newer trainer: upgrade trainer' : 'prepare the dataset again with this trainer (`trainer data prepare ... --overwrite`)',
      details: { path, version: obj.version },
    });
  }
  const tok = obj.tokenizer;
  if (!isRecord(tok) || typeof tok.hash !== 'string' || !HEX64.test(tok.hash) || !isCount(tok.vocabSize) || !isCount(tok.eotToken)) throw manifestError(path, 'tokenizer must be { hash, vocabSize, eotToken }');
  const dtype = obj.dtype;
  const bytesPerToken = obj.bytesPerToken;
  if (!((dtype === 'uint16' && bytesPerToken === 2) || (dtype === 'uint32' && bytesPerToken === 4))) throw manifestError(path, `dtype ${String(dtype)} / bytesPerToken ${String(bytesPerToken)} is not uint16/2 or uint32/4`);
  if ((dtype === 'uint16') !== (tok.vocabSize <= 65536)) throw manifestError(path, `dtype ${dtype} does not match vocabSize ${tok.vocabSize}`);
  if (typeof obj.datasetId !== 'string' || !HEX64.test(obj.datasetId)) throw manifestError(path, 'datasetId must be 64 hex digits');
  if (typeof obj.valFraction !== 'number' || !isCount(obj.shardBytes)) throw manifestError(path, 'valFraction and shardBytes must be numbers');
  if (!isRecord(obj.splits)) throw manifestError(path, 'splits is missing');
  for (const split of DATASET_SPLITS) {
    const s = obj.splits[split];
    if (!isRecord(s) || !Array.isArray(s.shards) || !isCount(s.tokens) || !isCount(s.documents)) throw manifestError(path, `splits.${split} must be { tokens, documents, shards }`);
    const shards = s.shards.map((e, i) => checkShard(e, `splits.${split}.shards[${i}]`, path));
    const tokens = shards.reduce((n, e) => n + e.tokens, 0);
    const documents = shards.reduce((n, e) => n + e.documents, 0);
    if (tokens !== s.tokens || documents !== s.documents) throw manifestError(path, `splits.${split} says ${s.tokens} tokens / ${s.documents} documents but its shards add up to ${tokens} / ${documents}`);
  }
  if (!Array.isArray(obj.sources) || !isRecord(obj.totals)) throw manifestError(path, 'sources and totals are missing');
  return obj as unknown as DatasetManifest;
}

/** Reads and checks `dir/manifest.json`; a missing one is TRAINER_ERR_DATASET_FORMAT saying so. */
export async function readManifest(path: string): Promise<DatasetManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TrainerError(DataErrorCode.DATASET_FORMAT, missing ? `${path} does not exist: the folder is not a finished dataset` : `cannot read ${path}: ${(err as Error).message}`, {
      hint: missing ? 'run `trainer data prepare --data ... --tokenizer ... --out DIR` (again, if it was interrupted) and pass DIR' : 'check the file permissions',
      cause: err,
      details: { path },
    });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw manifestError(path, `not valid JSON (${(err as Error).message})`, err);
  }
  return parseManifest(obj, path);
}
