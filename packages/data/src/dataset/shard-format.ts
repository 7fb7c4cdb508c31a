import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import { sha256Hex } from '../internal/hash.js';
import { encodeTokenFileHeader, TOKEN_FILE_HEADER_BYTES, TOKEN_FILE_MAGIC, TOKEN_FILE_VERSION } from '../token-file.js';
import type { DatasetSplit } from './manifest.js';

/**
 * On-disk layout of one shard of a prepared dataset.
 *
 * `train-00000.tok`: a token file in the TRAINTOK version 1 format of token-file.ts (128-byte
 * header, then the tokens little-endian), so readTokenFile reads a shard as it is. Its "corpus
 * hash" field holds shardSourceHash(datasetId, file name): it ties the shard to the dataset and to
 * its place in it, so a shard copied from another dataset or renamed is refused by its header.
 *
 * `train-00000.idx`: where each document of the shard starts. All integers little-endian:
 *
 *   offset size  field
 *        0    8  magic "TRAINIDX"
 *        8    4  version (u32) = 1
 *       12    4  reserved, 0
 *       16    8  documents (u64)
 *       24    8  tokens in the shard (u64): the end of the last document
 *       32  8*n  start offset (u64, in tokens) of each document; document i is
 *                [start_i, start_(i+1)), its eot token included
 */
export const INDEX_FILE_MAGIC = 'TRAINIDX';
export const INDEX_FILE_VERSION = 1;
export const INDEX_FILE_HEADER_BYTES = 32;
export const SHARD_HEADER_BYTES = TOKEN_FILE_HEADER_BYTES;

/** `train-00000.tok` (five digits, more when there are more shards). */
export function shardFileName(split: DatasetSplit, index: number): string {
  return `${split}-${String(index).padStart(5, '0')}.tok`;
}

export function indexFileName(split: DatasetSplit, index: number): string {
  return `${split}-${String(index).padStart(5, '0')}.idx`;
}

/** The value of a shard header's corpus-hash field: SHA-256 of "<datasetId>/<file name>". */
export function shardSourceHash(datasetId: string, file: string): string {
  return sha256Hex(`${datasetId}/${file}`);
}

export interface ShardHeader {
  bytesPerToken: 2 | 4;
  tokens: number;
  vocabSize: number;
  tokenizerHash: string;
  sourceHash: string;
  payloadSha256: string;
}

export function encodeShardHeader(h: ShardHeader): Buffer {
  return encodeTokenFileHeader({ ...h, corpusHash: h.sourceHash });
}

const SHARD_HINT = 'the dataset folder is damaged: run `trainer data prepare` again with --overwrite (or restore the file)';

/** Parses a shard header and checks it against what the manifest expects of that shard. */
export function checkShardHeader(header: Buffer, path: string, expected: Omit<ShardHeader, 'payloadSha256'>): void {
  const refuse = (message: string, code: string = DataErrorCode.TOKEN_FILE_FORMAT): never => {
    throw new TrainerError(code, `shard ${path} refused: ${message}`, { hint: SHARD_HINT, details: { path } });
  };
  if (header.length < SHARD_HEADER_BYTES) refuse(`only ${header.length} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte header`, DataErrorCode.TOKEN_FILE_TRUNCATED);
  if (header.subarray(0, 8).toString('latin1') !== TOKEN_FILE_MAGIC) refuse(`not a trainer token file (magic is not "${TOKEN_FILE_MAGIC}")`);
  const version = header.readUInt32LE(8);
  if (version !== TOKEN_FILE_VERSION) refuse(`token file version ${version} is not supported (this build reads version ${TOKEN_FILE_VERSION})`);
  const bytesPerToken = header.readUInt32LE(12);
  const tokens = Number(header.readBigUInt64LE(16));
  const vocabSize = header.readUInt32LE(24);
  if (bytesPerToken !== expected.bytesPerToken || vocabSize !== expected.vocabSize) {
    refuse(`header says ${bytesPerToken} bytes per token, vocabSize ${vocabSize}; the manifest ${expected.bytesPerToken}, ${expected.vocabSize}`);
  }
  if (header.subarray(32, 64).toString('hex') !== expected.tokenizerHash) refuse('made with another tokenizer than the manifest names', DataErrorCode.TOKEN_FILE_MISMATCH);
  if (header.subarray(64, 96).toString('hex') !== expected.sourceHash) refuse('belongs to another dataset or another place in this one (its source hash differs)', DataErrorCode.TOKEN_FILE_MISMATCH);
  if (tokens !== expected.tokens) refuse(`header says ${tokens} tokens, the manifest ${expected.tokens}`);
}

export function encodeIndexHeader(documents: number, tokens: number): Buffer {
  const header = Buffer.alloc(INDEX_FILE_HEADER_BYTES);
  header.write(INDEX_FILE_MAGIC, 0, 'latin1');
  header.writeUInt32LE(INDEX_FILE_VERSION, 8);
  header.writeBigUInt64LE(BigInt(documents), 16);
  header.writeBigUInt64LE(BigInt(tokens), 24);
  return header;
}

/** Document start offsets of a whole .idx file (checked: magic, version, size, ascending, below `tokens`). */
export function parseIndexFile(bytes: Buffer, path: string): { documents: number; tokens: number; starts: Float64Array } {
  const refuse = (message: string): never => {
    throw new TrainerError(DataErrorCode.DATASET_FORMAT, `document index ${path} refused: ${message}`, { hint: SHARD_HINT, details: { path } });
  };
  if (bytes.length < INDEX_FILE_HEADER_BYTES || bytes.subarray(0, 8).toString('latin1') !== INDEX_FILE_MAGIC) refuse(`not a trainer document index (magic is not "${INDEX_FILE_MAGIC}")`);
  const version = bytes.readUInt32LE(8);
  if (version !== INDEX_FILE_VERSION) refuse(`version ${version} is not supported (this build reads version ${INDEX_FILE_VERSION})`);
  const documents = Number(bytes.readBigUInt64LE(16));
  const tokens = Number(bytes.readBigUInt64LE(24));
  if (bytes.length !== INDEX_FILE_HEADER_BYTES + 8 * documents) refuse(`${bytes.length} bytes, but ${documents} documents need ${INDEX_FILE_HEADER_BYTES + 8 * documents}`);
  const starts = new Float64Array(documents);
  for (let i = 0; i < documents; i++) {
    starts[i] = Number(bytes.readBigUInt64LE(INDEX_FILE_HEADER_BYTES + 8 * i));
    if (starts[i] >= tokens || (i > 0 && starts[i] <= starts[i - 1]) || (i === 0 && starts[i] !== 0)) refuse(`document ${i} starts at ${starts[i]}, out of order or past the ${tokens} tokens`);
  }
  return { documents, tokens, starts };
}
