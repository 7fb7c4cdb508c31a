import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from './codes.js';
import { expectTrainerError } from './internal/expect-error.js';
import { TOKEN_FILE_HEADER_BYTES, readTokenFile, writeTokenFile } from './token-file.js';

const meta = { tokenizerHash: 'a'.repeat(64), corpusHash: '0123456789abcdef'.repeat(4), vocabSize: 2048 };

describe('token files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-tokfile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips uint16 tokens with their meta (header 128 bytes + 2 bytes per token)', async () => {
    const path = join(dir, 'a.tok');
    const tokens = Uint16Array.from({ length: 1001 }, (_, i) => (i * 37) % 2048);
    await writeTokenFile(path, tokens, meta);
    const back = await readTokenFile(path);
    expect(back.tokens).toBeInstanceOf(Uint16Array);
    expect(back.tokens).toEqual(tokens);
    expect(back.meta).toEqual({ ...meta, dtype: 'uint16', count: 1001 });
    expect((await readFile(path)).length).toBe(TOKEN_FILE_HEADER_BYTES + 2 * 1001);
  });

  it('uses uint32 above 65536 tokens of vocabulary, and uint16 at exactly 65536', async () => {
    const big = join(dir, 'big.tok');
    const tokens = Uint32Array.from([0, 65535, 65536, 99999]);
    await writeTokenFile(big, tokens, { ...meta, vocabSize: 100000 });
    const back = await readTokenFile(big);
    expect(back.tokens).toBeInstanceOf(Uint32Array);
    expect(Array.from(back.tokens)).toEqual([0, 65535, 65536, 99999]);
    const edge = join(dir, 'edge.tok');
    await writeTokenFile(edge, Uint32Array.from([65535, 1]), { ...meta, vocabSize: 65536 });
    expect((await readTokenFile(edge)).tokens).toBeInstanceOf(Uint16Array);
    const empty = join(dir, 'empty.tok');
    await writeTokenFile(empty, new Uint16Array(0), meta);
    expect((await readTokenFile(empty)).tokens).toHaveLength(0);
  });

  it('refuses tokens outside the vocabulary and malformed meta when writing', async () => {
    await expectTrainerError(() => writeTokenFile(join(dir, 'x.tok'), Uint16Array.from([1, 2048]), meta), DataErrorCode.TOKEN_ID_RANGE, /index 1/);
    await expectTrainerError(() => writeTokenFile(join(dir, 'x.tok'), new Uint16Array(1), { ...meta, corpusHash: 'xyz' }), DataErrorCode.DATA_OPTION, /hex/);
  });

  it('reports an unwritable destination as TRAINER_ERR_DATA_WRITE naming the path', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'x');
    await expectTrainerError(() => writeTokenFile(join(blocker, 'sub', 'x.tok'), new Uint16Array(2), meta), DataErrorCode.DATA_WRITE, /a-file\/sub\/x\.tok/);
  });

  async function written(name: string, tokens = Uint16Array.from([1, 2, 3, 4, 5])): Promise<{ path: string; bytes: Buffer }> {
    const path = join(dir, name);
    await writeTokenFile(path, tokens, meta);
    return { path, bytes: await readFile(path) };
  }

  it('refuses truncated files, naming the path', async () => {
    const { path, bytes } = await written('trunc.tok');
    await writeFile(path, bytes.subarray(0, bytes.length - 1));
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_TRUNCATED, /trunc\.tok.*promises 5 tokens/);
    await writeFile(path, bytes.subarray(0, 60));
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_TRUNCATED, /shorter than the 128-byte header/);
    await writeFile(path, bytes.subarray(0, 3));
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_TRUNCATED);
  });

  it('refuses foreign files, other versions, trailing bytes and damaged payloads', async () => {
    const foreign = join(dir, 'foreign.tok');
    await writeFile(foreign, 'hello, this is not a token file at all, just some text that goes on and on '.repeat(3));
    await expectTrainerError(() => readTokenFile(foreign), DataErrorCode.TOKEN_FILE_FORMAT, /not a trainer token file/);
    await writeFile(foreign, '');
    await expectTrainerError(() => readTokenFile(foreign), DataErrorCode.TOKEN_FILE_TRUNCATED);

    const { path, bytes } = await written('v.tok');
    const old = Buffer.from(bytes);
    old.writeUInt32LE(0, 8);
    await writeFile(path, old);
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_FORMAT, /version 0 is not supported/);
    const newer = Buffer.from(bytes);
    newer.writeUInt32LE(2, 8);
    await writeFile(path, newer);
    const err = await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_FORMAT, /version 2/);
    expect(err.hint).toMatch(/newer/);

    await writeFile(path, Buffer.concat([bytes, Buffer.from([0, 0])]));
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_FORMAT, /trailing bytes/);
    const flipped = Buffer.from(bytes);
    flipped[TOKEN_FILE_HEADER_BYTES + 3] ^= 1;
    await writeFile(path, flipped);
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_FORMAT, /checksum/);
    const dtype = Buffer.from(bytes);
    dtype.writeUInt32LE(3, 12);
    await writeFile(path, dtype);
    await expectTrainerError(() => readTokenFile(path), DataErrorCode.TOKEN_FILE_FORMAT, /bytes per token 3/);

    await expectTrainerError(() => readTokenFile(join(dir, 'absent.tok')), DataErrorCode.TOKEN_FILE_NOT_FOUND, /absent\.tok/);
  });
});
