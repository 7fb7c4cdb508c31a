import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { trainBpe } from './bpe-train.js';
import { DataErrorCode } from './codes.js';
import { expectTrainerError } from './internal/expect-error.js';
import { GPT2_PATTERN } from './pretokenize.js';

const TEXT = 'the cat sat on the mat. the whale! 東京 😀 '.repeat(10);

describe('tokenizer files', () => {
  let dir: string;
  let tok: BpeTokenizer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-tokenizer-'));
    tok = trainBpe([TEXT], { vocabSize: 280 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('toJSON is versioned and fromJSON restores an identical tokenizer', () => {
    const json = tok.toJSON();
    expect(json).toMatchObject({ format: 'trainer-bpe', version: 1, vocabSize: 280, pattern: GPT2_PATTERN, specialTokens: { '<|endoftext|>': 279 }, hash: tok.hash });
    expect(json.merges).toHaveLength(23);
    const back = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(json)));
    expect(back.hash).toBe(tok.hash);
    expect(back.encode(TEXT)).toEqual(tok.encode(TEXT));
  });

  it('save/load round-trips through disk, creating the folder', async () => {
    const path = join(dir, 'nested', 'tok.json');
    await tok.save(path);
    const back = await BpeTokenizer.load(path);
    expect(back.toJSON()).toEqual(tok.toJSON());
    expect(JSON.parse(await readFile(path, 'utf8')).format).toBe('trainer-bpe');
  });

  const mutate = (edit: (obj: Record<string, unknown>) => void): unknown => {
    const obj = JSON.parse(JSON.stringify(tok.toJSON())) as Record<string, unknown>;
    edit(obj);
    return obj;
  };

  it('refuses foreign, old, newer and corrupt files with TRAINER_ERR_TOKENIZER_FORMAT', async () => {
    const code = DataErrorCode.TOKENIZER_FORMAT;
    const foreign = { format: 'sentencepiece', version: 1 };
    const err = await expectTrainerError(() => BpeTokenizer.fromJSON(foreign), code, /format is "sentencepiece"/);
    expect(err.hint).toMatch(/trainer tokenizer train/);
    // A Hugging Face tokenizer.json goes to its own loader (hf-tokenizer.test.ts), which names what it cannot load.
    const hf = { version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } };
    await expectTrainerError(() => BpeTokenizer.fromJSON(hf), DataErrorCode.TOKENIZER_UNSUPPORTED, /end-of-text token/);
    await expectTrainerError(() => BpeTokenizer.fromJSON([1, 2]), code, /JSON object/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(null), code);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.version = 0))), code, /version 0/);
    const newer = await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.version = 2))), code, /version 2/);
    expect(newer.hint).toMatch(/newer/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.pattern = '\\w+'))), code, /pattern/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.vocabSize = 281))), code, /vocabSize/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => ((o.merges as number[][])[5] = [1, 2]))), code, /hash/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => ((o.merges as number[][])[0] = [256, 1]))), code, /merges\[0\]/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => ((o.merges as unknown[])[3] = 'x'))), code, /merges\[3\]/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => ((o.merges as number[][])[4] = (o.merges as number[][])[3]))), code, /repeats/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.specialTokens = {}))), code, /endoftext/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => (o.specialTokens = { '<|endoftext|>': 5 }))), code, /id 5/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(mutate((o) => delete o.hash)), code, /hash/);
  });

  it('load names the path for missing, non-JSON and corrupt files', async () => {
    const missing = join(dir, 'missing.json');
    await expectTrainerError(() => BpeTokenizer.load(missing), DataErrorCode.TOKENIZER_NOT_FOUND, /missing\.json/);
    const garbage = join(dir, 'garbage.json');
    await writeFile(garbage, '{"format": "trainer-bpe", ');
    await expectTrainerError(() => BpeTokenizer.load(garbage), DataErrorCode.TOKENIZER_FORMAT, /garbage\.json.*not valid JSON/);
    const blocker = join(dir, 'blocker');
    await writeFile(blocker, 'x');
    await expectTrainerError(() => tok.save(join(blocker, 'tok.json')), DataErrorCode.DATA_WRITE, /blocker\/tok\.json/);
    const old = join(dir, 'old.json');
    await writeFile(old, JSON.stringify(mutate((o) => (o.version = 0))));
    await expectTrainerError(() => BpeTokenizer.load(old), DataErrorCode.TOKENIZER_FORMAT, /old\.json.*version 0/);
  });
});
