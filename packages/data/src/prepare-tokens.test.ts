import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BpeTokenizer } from './bpe-tokenizer.js';
import { trainBpe } from './bpe-train.js';
import { DataErrorCode } from './codes.js';
import type { Corpus } from './corpus.js';
import { sha256OfStrings } from './internal/hash.js';
import { expectTrainerError } from './internal/expect-error.js';
import { prepareTokens } from './prepare-tokens.js';
import { readTokenFile } from './token-file.js';

function corpusOf(name: string, documents: string[]): Corpus {
  return { name, documents, sourceDescription: 'test', contentHash: sha256OfStrings(documents) };
}

const manyDocs = corpusOf('many docs', Array.from({ length: 40 }, (_, i) => `Document ${i}: the whale swam ${i} miles. `.repeat(3)));
const fewDocs = corpusOf('few', ['The only document. '.repeat(50), 'A second one, 東京 😀. '.repeat(20)]);

describe('prepareTokens', () => {
  let dir: string;
  let tok: BpeTokenizer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-prepare-'));
    tok = trainBpe([...manyDocs.documents, ...fewDocs.documents], { vocabSize: 320 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('joins documents with eot and holds out the last documents for validation', async () => {
    const logs: string[] = [];
    const out = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir: join(dir, 'c1'), valFraction: 0.1, log: (m) => logs.push(m) });
    expect(out.fromCache).toBe(false);
    expect(out.splitBy).toBe('documents');
    expect(out.train).toBeInstanceOf(Uint16Array);
    const eots = (a: ArrayLike<number>): number => Array.from(a).filter((t) => t === tok.eotToken).length;
    expect(eots(out.train)).toBe(36);
    expect(eots(out.val)).toBe(4);
    const joined = (docs: string[]): string => docs.map((d) => `${d}<|endoftext|>`).join('');
    expect(tok.decode(out.train)).toBe(joined(manyDocs.documents.slice(0, 36)));
    expect(tok.decode(out.val)).toBe(joined(manyDocs.documents.slice(36)));
    expect(logs.some((m) => /tokenized many docs/.test(m))).toBe(true);
    expect(out.cachePath).toMatch(/many_docs-[0-9a-f]{16}\.train\.tok$/);
  });

  it('reuses the cache on the second call, with identical tokens', async () => {
    const cacheDir = join(dir, 'c2');
    const first = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir });
    const second = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir });
    expect(first.fromCache).toBe(false);
    expect(second.fromCache).toBe(true);
    expect(second.train).toEqual(first.train);
    expect(second.val).toEqual(first.val);
    expect(second.cachePath).toBe(first.cachePath);
    const file = await readTokenFile(second.cachePath);
    expect(file.meta).toMatchObject({ tokenizerHash: tok.hash, corpusHash: manyDocs.contentHash, vocabSize: 320 });
    // Another split setting or tokenizer is another cache entry.
    const other = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, valFraction: 0.2 });
    expect(other.fromCache).toBe(false);
    expect(other.cachePath).not.toBe(first.cachePath);
    const tok2 = trainBpe(manyDocs.documents, { vocabSize: 300 });
    expect((await prepareTokens({ corpus: manyDocs, tokenizer: tok2, cacheDir })).cachePath).not.toBe(first.cachePath);
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.tok'))).toHaveLength(6);
    expect((await readdir(cacheDir)).some((f) => f.includes('.tmp-'))).toBe(false);
  });

  it('rebuilds a damaged or truncated cache file instead of using it', async () => {
    const cacheDir = join(dir, 'c3');
    const first = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir });
    const bytes = await readFile(first.valPath);
    await writeFile(first.valPath, bytes.subarray(0, bytes.length - 2));
    const logs: string[] = [];
    const again = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, log: (m) => logs.push(m) });
    expect(again.fromCache).toBe(false);
    expect(logs.some((m) => /rebuilding token cache: .*promises/.test(m))).toBe(true);
    expect(again.val).toEqual(first.val);
    expect((await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir })).fromCache).toBe(true);
  });

  it('reports an unwritable cache folder as TRAINER_ERR_DATA_WRITE', async () => {
    const blocker = join(dir, 'not-a-dir');
    await writeFile(blocker, 'x');
    await expectTrainerError(() => prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir: join(blocker, 'cache') }), DataErrorCode.DATA_WRITE, /not-a-dir/);
  });

  it('splits by tokens when there are few documents', async () => {
    const out = await prepareTokens({ corpus: fewDocs, tokenizer: tok, cacheDir: join(dir, 'c4'), valFraction: 0.25 });
    expect(out.splitBy).toBe('tokens');
    const total = out.train.length + out.val.length;
    expect(out.val.length).toBe(Math.floor(total * 0.25));
    const all = new Uint16Array(total);
    all.set(out.train);
    all.set(out.val, out.train.length);
    expect(tok.decode(all)).toBe(fewDocs.documents.map((d) => `${d}<|endoftext|>`).join(''));
  });

  it('valFraction 0 gives an empty validation split', async () => {
    const out = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir: join(dir, 'c5'), valFraction: 0, contextLength: 16 });
    expect(out.val).toHaveLength(0);
    expect(tok.decode(out.train)).toBe(manyDocs.documents.map((d) => `${d}<|endoftext|>`).join(''));
  });

  it('refuses splits too short for the context, and bad valFraction', async () => {
    const cacheDir = join(dir, 'c6');
    const ok = await prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, contextLength: 32 });
    const valLen = ok.val.length;
    await expectTrainerError(() => prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, contextLength: valLen }), DataErrorCode.DATA_TOO_SHORT, new RegExp(`val split.*need at least ${valLen + 1}`));
    await expectTrainerError(() => prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, contextLength: 100000 }), DataErrorCode.DATA_TOO_SHORT, /train and val/);
    await expectTrainerError(() => prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, valFraction: 0.9 }), DataErrorCode.DATA_OPTION, /0\.9/);
    await expectTrainerError(() => prepareTokens({ corpus: manyDocs, tokenizer: tok, cacheDir, valFraction: Number.NaN }), DataErrorCode.DATA_OPTION);
  });
});
