import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from './codes.js';
import { expectTrainerError } from './internal/expect-error.js';
import { loadTokenIdsFile } from './token-ids-file.js';

describe('loadTokenIdsFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-ids-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it('reads a JSON array of token-id sequences', async () => {
    const path = await file('ok.json', '[[1, 2, 3], [2047], [0, 0]]');
    expect(await loadTokenIdsFile(path)).toEqual([[1, 2, 3], [2047], [0, 0]]);
    expect(await loadTokenIdsFile(path, { vocabSize: 2048 })).toHaveLength(3);
  });

  it('names the bad element', async () => {
    const code = DataErrorCode.TOKEN_IDS_FORMAT;
    await expectTrainerError(async () => loadTokenIdsFile(await file('neg.json', '[[1, 2], [3, -4]]')), code, /neg\.json\[1\]\[1\]: -4 is not a non-negative integer/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('frac.json', '[[1.5]]')), code, /\[0\]\[0\]: 1\.5/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('str.json', '[[1, "2"]]')), code, /\[0\]\[1\]: "2"/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('flat.json', '[1, 2]')), code, /\[0\]: expected an array of token ids/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('emptyseq.json', '[[1], []]')), code, /\[1\]: sequence is empty/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('obj.json', '{"ids": []}')), code, /expected an array of sequences/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('none.json', '[]')), code, /no sequence/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('big.json', '[[5, 2048]]'), { vocabSize: 2048 }), code, /\[0\]\[1\]: token id 2048 is not below vocabSize 2048/);
    await expectTrainerError(async () => loadTokenIdsFile(await file('bad.json', '[[1,')), code, /not valid JSON/);
    await expectTrainerError(() => loadTokenIdsFile(join(dir, 'missing.json')), DataErrorCode.TOKEN_FILE_NOT_FOUND, /missing\.json/);
  });
});
