import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishedTokenizerPath } from '../bench/published-tokenizers.js';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { UNICODE_EDGE_TEXTS } from '../internal/unicode-test-text.js';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import { readTokenFile } from '../token-file.js';
import { parseManifest } from './manifest.js';
import { prepareDataset, type PrepareDatasetOptions } from './prepare-dataset.js';
import { PreparedDataset } from './prepared-dataset.js';
import { readProgress } from './progress-file.js';
import { parseIndexFile } from './shard-format.js';
import { expectedSplits, jsonlOf, mobyChapters, smallTokenizer, writeText, zstdStoredFrames } from './test-fixtures.js';

let root: string;
let tokenizerPath: string;
let tokenizer: BpeTokenizer;
const chapters = mobyChapters(60);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'trainer-prepare-'));
  ({ path: tokenizerPath, tokenizer } = await smallTokenizer(root));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function readSplit(dir: string, split: 'train' | 'val'): Promise<number[]> {
  const ds = await PreparedDataset.open(dir);
  try {
    return [...(await ds.read(split, 0, ds.length(split)))];
  } finally {
    await ds.close();
  }
}

/** SHA-256 of every file of a dataset folder but the manifest, by name. */
async function shardFiles(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).filter((n) => n !== 'manifest.json').sort();
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, createHash('sha256').update(await readFile(join(dir, n))).digest('hex')] as const)));
}

function opts(data: string[], out: string, extra: Partial<PrepareDatasetOptions> = {}): PrepareDatasetOptions {
  return { data, tokenizer: tokenizerPath, out, threads: 1, shardBytes: 64 * 1024, valFraction: 0.1, ...extra };
}

describe('prepareDataset', () => {
  it('writes each document then eot, in order, split by content hash, into shards with document indexes', async () => {
    const src = join(root, 'layout');
    await writeText(join(src, 'a.jsonl'), jsonlOf(chapters.slice(0, 40)));
    await writeText(join(src, 'b/c.txt'), chapters[40]);
    await writeText(join(src, 'b/d.txt'), chapters[41]);
    const out = join(root, 'layout-out');
    const result = await prepareDataset(opts([src], out));
    const docs = chapters.slice(0, 42);
    const want = expectedSplits(tokenizer, docs, 0.1);
    expect(result.status).toBe('done');
    expect(await readSplit(out, 'train')).toEqual([...want.train]);
    expect(await readSplit(out, 'val')).toEqual([...want.val]);
    expect(want.valDocs.length).toBeGreaterThan(0);
    const m = result.manifest!;
    expect(m.totals).toMatchObject({ documents: 42, tokens: want.train.length + want.val.length });
    expect(m.splits.train.shards.length).toBeGreaterThan(3);
    // Shards end on document ends, each about the target size; every .idx lists its documents' starts.
    const lengths: number[] = [];
    for (const shard of m.splits.train.shards) {
      const index = parseIndexFile(await readFile(join(out, shard.indexFile)), shard.indexFile);
      expect(index.documents).toBe(shard.documents);
      const starts = [...index.starts, shard.tokens];
      for (let i = 0; i < index.documents; i++) lengths.push(starts[i + 1] - starts[i]);
      // The shard is a token file that readTokenFile reads as it is.
      const file = await readTokenFile(join(out, shard.file));
      expect(file.meta).toMatchObject({ tokenizerHash: tokenizer.hash, vocabSize: 300, dtype: 'uint16', count: shard.tokens });
    }
    expect(lengths).toEqual(want.trainDocs);
    expect(parseManifest(JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')), 'm')).toEqual(m);
    expect(await readdir(out)).not.toContain('progress.json');
  });

  it('reads .gz and .zst sources (several frames/members) like the plain file; blank lines, CRLF and empty texts are no documents', async () => {
    const docs = chapters.slice(0, 12);
    const lines = docs.map((text) => JSON.stringify({ text }));
    const messy = ['', lines[0], '   ', JSON.stringify({ text: '' }), ...lines.slice(1, 6).map((l) => l + '\r'), ...lines.slice(6)].join('\n'); // no final newline
    const plain = await writeText(join(root, 'kinds/plain.jsonl'), messy);
    const half = Buffer.from(messy).subarray(0, 5000);
    const rest = Buffer.from(messy).subarray(5000);
    const gz = await writeText(join(root, 'kinds/two-members.jsonl.gz'), Buffer.concat([gzipSync(half), gzipSync(rest)]));
    const zst = await writeText(join(root, 'kinds/frames.jsonl.zst'), zstdStoredFrames(Buffer.from(messy), 7000));
    const want = expectedSplits(tokenizer, docs, 0.1);
    for (const [name, path] of [['plain', plain], ['gz', gz], ['zst', zst]]) {
      const out = join(root, `kinds-${name}`);
      const r = await prepareDataset(opts([path], out));
      expect(r.manifest!.totals.documents, name).toBe(12);
      expect(await readSplit(out, 'train'), name).toEqual([...want.train]);
      expect(await readSplit(out, 'val'), name).toEqual([...want.val]);
    }
  });

  it('gives the same files for 1 and 2 threads', async () => {
    const src = await writeText(join(root, 'threads/a.jsonl'), jsonlOf(chapters));
    const one = await prepareDataset(opts([src], join(root, 'threads-1'), { threads: 1 }));
    const two = await prepareDataset(opts([src], join(root, 'threads-2'), { threads: 2 }));
    expect(await shardFiles(join(root, 'threads-2'))).toEqual(await shardFiles(join(root, 'threads-1')));
    expect({ ...two.manifest!, created: '' }).toEqual({ ...one.manifest!, created: '' });
  });

  it('prepares with a published SentencePiece-style tokenizer.json (Llama 2: byte fallback) in 2 threads, as BpeTokenizer encodes', async () => {
    const llama2 = publishedTokenizerPath('llama2');
    const docs = [...chapters.slice(0, 6), ...UNICODE_EDGE_TEXTS];
    const src = await writeText(join(root, 'llama2/a.jsonl'), jsonlOf(docs));
    const out = join(root, 'llama2-out');
    await prepareDataset(opts([src], out, { tokenizer: llama2, threads: 2 }));
    const want = expectedSplits(await BpeTokenizer.load(llama2), docs, 0.1);
    expect(await readSplit(out, 'train')).toEqual([...want.train]);
    expect(await readSplit(out, 'val')).toEqual([...want.val]);
  });

  it('refuses a malformed .jsonl line, naming file and line', async () => {
    const src = await writeText(join(root, 'bad/x.jsonl'), `${JSON.stringify({ text: 'fine' })}\n{"txt": "no text field"}\n`);
    await expectTrainerError(() => prepareDataset(opts([src], join(root, 'bad-out'))), DataErrorCode.CORPUS_FORMAT, /x\.jsonl:2: line has no string field "text"/);
    const notJson = await writeText(join(root, 'bad/y.jsonl'), 'not json\n');
    await expectTrainerError(() => prepareDataset(opts([notJson], join(root, 'bad-out2'))), DataErrorCode.CORPUS_FORMAT, /y\.jsonl:1: line is not valid JSON/);
    const empty = await writeText(join(root, 'bad/empty.jsonl'), '\n\n');
    await expectTrainerError(() => prepareDataset(opts([empty], join(root, 'bad-out3'))), DataErrorCode.CORPUS_EMPTY);
    const broken = await writeText(join(root, 'bad/cut.jsonl.gz'), gzipSync(Buffer.from(jsonlOf(chapters.slice(0, 3)))).subarray(0, 200));
    await expectTrainerError(() => prepareDataset(opts([broken], join(root, 'bad-out4'))), DataErrorCode.CORPUS_FORMAT, /cut\.jsonl\.gz/);
  });

  it('refuses bad options', async () => {
    await expectTrainerError(() => prepareDataset(opts(['moby-dick'], join(root, 'o1'), { threads: 0 })), DataErrorCode.DATA_OPTION);
    await expectTrainerError(() => prepareDataset(opts(['moby-dick'], join(root, 'o2'), { shardBytes: 100 })), DataErrorCode.DATA_OPTION);
    await expectTrainerError(() => prepareDataset(opts(['moby-dick'], join(root, 'o3'), { valFraction: 0.9 })), DataErrorCode.DATA_OPTION);
    await expectTrainerError(() => prepareDataset(opts([join(root, 'missing')], join(root, 'o4'))), DataErrorCode.CORPUS_NOT_FOUND);
    // The threads load the tokenizer: their error arrives with its code and hint.
    await expectTrainerError(() => prepareDataset(opts(['moby-dick'], join(root, 'o5'), { tokenizer: join(root, 'no-tokenizer.json'), threads: 2 })), DataErrorCode.TOKENIZER_NOT_FOUND, /no-tokenizer\.json/);
  });

  it('resumes after an interruption without redoing completed shards, to the same files', async () => {
    const all = mobyChapters();
    const src = await writeText(join(root, 'resume/a.jsonl'), jsonlOf(all));
    const whole = join(root, 'resume-whole');
    await prepareDataset(opts([src], whole, { shardBytes: 64 * 1024 }));
    const out = join(root, 'resume-cut');
    const abort = new AbortController();
    const first = await prepareDataset(opts([src], out, {
      shardBytes: 64 * 1024,
      signal: abort.signal,
      progressIntervalMs: 0,
      onProgress: (p) => p.shards >= 4 && abort.abort(),
    }));
    expect(first.status).toBe('interrupted');
    const progress = (await readProgress(join(out, 'progress.json')))!;
    expect(progress.splits.train.completed.length).toBeGreaterThanOrEqual(3);
    expect(progress.documents).toBeLessThan(all.length);
    const second = await prepareDataset(opts([src], out, { shardBytes: 64 * 1024 }));
    expect(second.status).toBe('done');
    expect(second.resumedFrom).toEqual({ documents: progress.documents, shards: progress.splits.train.completed.length + progress.splits.val.completed.length });
    expect(second.tokenizedDocuments).toBe(all.length - progress.documents);
    expect(await shardFiles(out)).toEqual(await shardFiles(whole));
    // Run again: nothing to do.
    const third = await prepareDataset(opts([src], out, { shardBytes: 64 * 1024 }));
    expect(third).toMatchObject({ status: 'already-done', tokenizedDocuments: 0 });
  });

  it('refuses to resume or replace with another tokenizer or settings unless --overwrite, and refuses a damaged completed shard', async () => {
    const src = await writeText(join(root, 'mismatch/a.jsonl'), jsonlOf(chapters.slice(0, 30)));
    const out = join(root, 'mismatch-out');
    const abort = new AbortController();
    await prepareDataset(opts([src], out, { shardBytes: 8 * 1024, signal: abort.signal, progressIntervalMs: 0, onProgress: (p) => p.shards >= 2 && abort.abort() }));
    const other = await smallTokenizer(root, 280);
    const err = await expectTrainerError(() => prepareDataset(opts([src], out, { shardBytes: 8 * 1024, tokenizer: other.path })), DataErrorCode.DATASET_MISMATCH, /unfinished .* another tokenizer/);
    expect(err.hint).toMatch(/--overwrite/);
    await expectTrainerError(() => prepareDataset(opts([src], out, { shardBytes: 8 * 1024, valFraction: 0.2 })), DataErrorCode.DATASET_MISMATCH, /--val-fraction/);
    // A completed shard damaged on disk: the resume refuses it.
    const progress = (await readProgress(join(out, 'progress.json')))!;
    const shard = join(out, progress.splits.train.completed[0].file);
    const bytes = await readFile(shard);
    bytes[200] ^= 1;
    await writeFile(shard, bytes);
    await expectTrainerError(() => prepareDataset(opts([src], out, { shardBytes: 8 * 1024 })), DataErrorCode.DATASET_FORMAT, /damaged/);
    // --overwrite starts again; a finished dataset of other inputs is refused too.
    const done = await prepareDataset(opts([src], out, { shardBytes: 8 * 1024, overwrite: true }));
    expect(done.status).toBe('done');
    await expectTrainerError(() => prepareDataset(opts([src], out, { shardBytes: 8 * 1024, tokenizer: other.path })), DataErrorCode.DATASET_MISMATCH, /a prepared dataset made with another tokenizer/);
    await writeFile(join(out, 'notes.txt'), 'mine');
    expect((await prepareDataset(opts([src], out, { shardBytes: 8 * 1024, tokenizer: other.path, overwrite: true }))).status).toBe('done');
    expect(await readFile(join(out, 'notes.txt'), 'utf8')).toBe('mine'); // --overwrite deletes only dataset files
  });

  it('reads built-in corpora by name', async () => {
    const out = join(root, 'builtin');
    const r = await prepareDataset(opts(['moby-dick'], out, { shardBytes: 256 * 1024, threads: 2 }));
    const want = expectedSplits(tokenizer, mobyChapters(1000), 0.1);
    expect(r.manifest!.sources[0]).toMatchObject({ path: 'builtin:moby-dick' });
    expect(await readSplit(out, 'val')).toEqual([...want.val]);
    expect(r.manifest!.splits.train.tokens).toBe(want.train.length);
  });
});
