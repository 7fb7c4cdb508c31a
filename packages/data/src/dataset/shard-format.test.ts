import { describe, expect, it } from 'vitest';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import { encodeIndexHeader, encodeShardHeader, checkShardHeader, indexFileName, parseIndexFile, shardFileName, shardSourceHash } from './shard-format.js';

const tokenizerHash = 'ab'.repeat(32);
const sourceHash = shardSourceHash('cd'.repeat(32), 'train-00000.tok');
const expected = { bytesPerToken: 2 as const, tokens: 10, vocabSize: 300, tokenizerHash, sourceHash };

function indexFile(starts: number[], tokens: number): Buffer {
  const body = Buffer.alloc(8 * starts.length);
  starts.forEach((s, i) => body.writeBigUInt64LE(BigInt(s), 8 * i));
  return Buffer.concat([encodeIndexHeader(starts.length, tokens), body]);
}

describe('shard files', () => {
  it('names shards with five digits', () => {
    expect(shardFileName('train', 3)).toBe('train-00003.tok');
    expect(indexFileName('val', 123456)).toBe('val-123456.idx');
  });

  it('checks a shard header against the manifest and refuses other versions, dtypes, tokenizers and datasets', async () => {
    const header = encodeShardHeader({ ...expected, payloadSha256: '00'.repeat(32) });
    expect(() => checkShardHeader(header, 'p', expected)).not.toThrow();
    const newer = Buffer.from(header);
    newer.writeUInt32LE(2, 8);
    await expectTrainerError(() => checkShardHeader(newer, 'p', expected), DataErrorCode.TOKEN_FILE_FORMAT, /version 2/);
    await expectTrainerError(() => checkShardHeader(header, 'p', { ...expected, bytesPerToken: 4 }), DataErrorCode.TOKEN_FILE_FORMAT, /bytes per token/);
    await expectTrainerError(() => checkShardHeader(header, 'p', { ...expected, tokenizerHash: 'ef'.repeat(32) }), DataErrorCode.TOKEN_FILE_MISMATCH, /another tokenizer/);
    await expectTrainerError(() => checkShardHeader(header, 'p', { ...expected, sourceHash: 'ef'.repeat(32) }), DataErrorCode.TOKEN_FILE_MISMATCH, /another dataset/);
    await expectTrainerError(() => checkShardHeader(header, 'p', { ...expected, tokens: 11 }), DataErrorCode.TOKEN_FILE_FORMAT, /10 tokens/);
    await expectTrainerError(() => checkShardHeader(header.subarray(0, 50), 'p', expected), DataErrorCode.TOKEN_FILE_TRUNCATED);
  });

  it('reads a document index and refuses foreign, other-version, cut or unordered ones', async () => {
    expect(parseIndexFile(indexFile([0, 4, 9], 12), 'i')).toMatchObject({ documents: 3, tokens: 12, starts: Float64Array.of(0, 4, 9) });
    const newer = indexFile([0], 1);
    newer.writeUInt32LE(2, 8);
    await expectTrainerError(() => parseIndexFile(newer, 'i'), DataErrorCode.DATASET_FORMAT, /version 2/);
    await expectTrainerError(() => parseIndexFile(Buffer.from('TRAINTOK' + '\0'.repeat(40)), 'i'), DataErrorCode.DATASET_FORMAT, /magic/);
    await expectTrainerError(() => parseIndexFile(indexFile([0, 4], 12).subarray(0, 40), 'i'), DataErrorCode.DATASET_FORMAT, /bytes/);
    await expectTrainerError(() => parseIndexFile(indexFile([0, 5, 3], 12), 'i'), DataErrorCode.DATASET_FORMAT, /out of order/);
    await expectTrainerError(() => parseIndexFile(indexFile([0, 12], 12), 'i'), DataErrorCode.DATASET_FORMAT, /past/);
  });
});
