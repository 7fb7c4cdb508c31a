import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { writeFileAtomic } from './internal/atomic-write.js';
import { sha256Hex } from './internal/hash.js';
import { type TokenArray, tokenArrayFor } from './internal/token-buffer.js';

/**
 * Binary token file, version 1. All integers little-endian; the header is 128 bytes so the
 * payload stays aligned for typed-array views.
 *
 *   offset size  field
 *        0    8  magic "TRAINTOK"
 *        8    4  version (u32) = 1
 *       12    4  bytes per token (u32): 2 (uint16, vocab <= 65536) or 4 (uint32)
 *       16    8  token count (u64)
 *       24    4  vocabSize (u32)
 *       28    4  reserved, 0
 *       32   32  tokenizer hash (SHA-256)
 *       64   32  corpus content hash (SHA-256)
 *       96   32  SHA-256 of the payload
 *      128    .  tokens
 */
export const TOKEN_FILE_MAGIC = 'TRAINTOK';
export const TOKEN_FILE_VERSION = 1;
export const TOKEN_FILE_HEADER_BYTES = 128;

export interface TokenFileMeta {
  /** BpeTokenizer.hash of the tokenizer that produced the tokens (64 hex digits). */
  tokenizerHash: string;
  /** Corpus.contentHash of the text the tokens came from (64 hex digits). */
  corpusHash: string;
  /** Every token is < vocabSize. Decides the stored dtype. */
  vocabSize: number;
}

export interface TokenFile {
  tokens: TokenArray;
  meta: TokenFileMeta & { dtype: 'uint16' | 'uint32'; count: number };
}

const HASH_RE = /^[0-9a-f]{64}$/;
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function optionError(message: string): TrainerError {
  return new TrainerError(DataErrorCode.DATA_OPTION, message, { hint: 'pass the hashes from BpeTokenizer.hash and Corpus.contentHash and the tokenizer vocabSize' });
}

/** Writes `tokens` with a header (atomically: temp file + rename; creates the parent directory). */
export async function writeTokenFile(path: string, tokens: TokenArray, meta: TokenFileMeta): Promise<void> {
  if (!HASH_RE.test(meta.tokenizerHash) || !HASH_RE.test(meta.corpusHash)) throw optionError(`token file ${path}: hashes must be 64 lowercase hex digits`);
  if (!Number.isSafeInteger(meta.vocabSize) || meta.vocabSize < 1 || meta.vocabSize > 0xffffffff) throw optionError(`token file ${path}: invalid vocabSize ${meta.vocabSize}`);
  const stored = tokenArrayFor(meta.vocabSize, tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] >= meta.vocabSize) {
      throw new TrainerError(DataErrorCode.TOKEN_ID_RANGE, `token file ${path}: token ${tokens[i]} at index ${i} is not below vocabSize ${meta.vocabSize}`, {
        hint: 'the tokens were produced by another tokenizer than the one whose vocabSize was given',
        details: { path, index: i },
      });
    }
    stored[i] = tokens[i];
  }
  const payload = toLittleEndianBytes(stored);
  const header = encodeTokenFileHeader({
    bytesPerToken: stored.BYTES_PER_ELEMENT as 2 | 4, tokens: stored.length, vocabSize: meta.vocabSize,
    tokenizerHash: meta.tokenizerHash, corpusHash: meta.corpusHash, payloadSha256: sha256Hex(payload),
  });
  await writeFileAtomic(path, [header, payload]);
}

/** The 128-byte header of a token file (the layout above). */
export function encodeTokenFileHeader(h: { bytesPerToken: 2 | 4; tokens: number; vocabSize: number; tokenizerHash: string; corpusHash: string; payloadSha256: string }): Buffer {
  const header = Buffer.alloc(TOKEN_FILE_HEADER_BYTES);
  header.write(TOKEN_FILE_MAGIC, 0, 'latin1');
  header.writeUInt32LE(TOKEN_FILE_VERSION, 8);
  header.writeUInt32LE(h.bytesPerToken, 12);
  header.writeBigUInt64LE(BigInt(h.tokens), 16);
  header.writeUInt32LE(h.vocabSize, 24);
  header.write(h.tokenizerHash, 32, 'hex');
  header.write(h.corpusHash, 64, 'hex');
  header.write(h.payloadSha256, 96, 'hex');
  return header;
}

function formatError(path: string, message: string, hint: string, code: string = DataErrorCode.TOKEN_FILE_FORMAT): TrainerError {
  return new TrainerError(code, `token file ${path} refused: ${message}`, { hint, details: { path } });
}

const REBUILD_HINT = 'delete it and let trainer re-tokenize the corpus (token files in the cache directory are rebuilt automatically)';

/**
 * Reads and verifies a token file: magic, version, dtype, exact size, payload hash and token
 * range. A foreign, other-version, truncated or damaged file is refused with a TrainerError.
 */
export async function readTokenFile(path: string): Promise<TokenFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new TrainerError(DataErrorCode.TOKEN_FILE_NOT_FOUND, `cannot read token file ${path}: ${(err as Error).message}`, {
      hint: 'check the path; token files are made by prepareTokens / `trainer launch --data ...`',
      cause: err,
      details: { path },
    });
  }
  const magicOk = bytes.subarray(0, 8).toString('latin1') === TOKEN_FILE_MAGIC;
  if (!magicOk) {
    const truncatedMagic = bytes.length < 8 && TOKEN_FILE_MAGIC.startsWith(bytes.toString('latin1'));
    if (truncatedMagic) throw formatError(path, `only ${bytes.length} bytes, shorter than the header`, REBUILD_HINT, DataErrorCode.TOKEN_FILE_TRUNCATED);
    throw formatError(path, `not a trainer token file (magic is not "${TOKEN_FILE_MAGIC}")`, 'pass a file written by trainer (prepareTokens / writeTokenFile)');
  }
  if (bytes.length < TOKEN_FILE_HEADER_BYTES) throw formatError(path, `only ${bytes.length} bytes, shorter than the ${TOKEN_FILE_HEADER_BYTES}-byte header`, REBUILD_HINT, DataErrorCode.TOKEN_FILE_TRUNCATED);
  const version = bytes.readUInt32LE(8);
  if (version !== TOKEN_FILE_VERSION) {
    throw formatError(path, `format version ${version} is not supported (this build reads version ${TOKEN_FILE_VERSION})`, version > TOKEN_FILE_VERSION ? 'the file was written by a newer trainer: upgrade trainer, or delete it to re-tokenize' : REBUILD_HINT);
  }
  const bytesPerToken = bytes.readUInt32LE(12);
  if (bytesPerToken !== 2 && bytesPerToken !== 4) throw formatError(path, `invalid bytes per token ${bytesPerToken}`, REBUILD_HINT);
  const count = Number(bytes.readBigUInt64LE(16));
  const vocabSize = bytes.readUInt32LE(24);
  if ((bytesPerToken === 2) !== (vocabSize <= 65536)) throw formatError(path, `dtype uint${bytesPerToken * 8} does not match vocabSize ${vocabSize}`, REBUILD_HINT);
  const expected = TOKEN_FILE_HEADER_BYTES + count * bytesPerToken;
  if (bytes.length < expected) throw formatError(path, `${bytes.length} bytes but the header promises ${count} tokens (${expected} bytes)`, REBUILD_HINT, DataErrorCode.TOKEN_FILE_TRUNCATED);
  if (bytes.length > expected) throw formatError(path, `${bytes.length - expected} unexpected trailing bytes after ${count} tokens`, REBUILD_HINT);
  const payload = bytes.subarray(TOKEN_FILE_HEADER_BYTES);
  if (sha256Hex(payload) !== bytes.subarray(96, 128).toString('hex')) throw formatError(path, 'payload checksum mismatch (the file is damaged)', REBUILD_HINT);
  const tokens = fromLittleEndianBytes(payload, bytesPerToken, count);
  for (let i = 0; i < count; i++) {
    if (tokens[i] >= vocabSize) throw formatError(path, `token ${tokens[i]} at index ${i} is not below vocabSize ${vocabSize}`, REBUILD_HINT);
  }
  const meta = {
    tokenizerHash: bytes.subarray(32, 64).toString('hex'),
    corpusHash: bytes.subarray(64, 96).toString('hex'),
    vocabSize,
    dtype: bytesPerToken === 2 ? ('uint16' as const) : ('uint32' as const),
    count,
  };
  return { tokens, meta };
}

function toLittleEndianBytes(tokens: TokenArray): Uint8Array {
  if (littleEndian) return new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  const out = Buffer.alloc(tokens.byteLength);
  tokens.forEach((t, i) => (tokens.BYTES_PER_ELEMENT === 2 ? out.writeUInt16LE(t, 2 * i) : out.writeUInt32LE(t, 4 * i)));
  return out;
}

function fromLittleEndianBytes(payload: Buffer, bytesPerToken: number, count: number): TokenArray {
  const tokens = bytesPerToken === 2 ? new Uint16Array(count) : new Uint32Array(count);
  if (littleEndian) {
    // Copy through bytes: the payload's offset inside the Buffer pool need not be aligned.
    new Uint8Array(tokens.buffer).set(payload);
  } else {
    for (let i = 0; i < count; i++) tokens[i] = bytesPerToken === 2 ? payload.readUInt16LE(2 * i) : payload.readUInt32LE(4 * i);
  }
  return tokens;
}
