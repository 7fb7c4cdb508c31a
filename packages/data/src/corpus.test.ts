import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from './codes.js';
import { loadCorpus } from './corpus.js';
import { expectTrainerError } from './internal/expect-error.js';

describe('loadCorpus', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-corpus-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads Moby Dick by default, one document per chapter', async () => {
    const corpus = await loadCorpus();
    expect(corpus.name).toBe('moby-dick');
    expect(corpus.documents).toHaveLength(139);
    expect(corpus.documents[3]).toMatch(/^CHAPTER 1\. Loomings\.\n\nCall me Ishmael\./);
    expect(corpus.sourceDescription).toMatch(/Moby Dick.*@stdlib\/datasets-moby-dick@/);
    expect(corpus.contentHash).toMatch(/^[0-9a-f]{64}$/);
    const chars = corpus.documents.reduce((n, d) => n + d.length, 0);
    expect(chars).toBeGreaterThan(1_200_000);
    expect((await loadCorpus('moby-dick')).contentHash).toBe(corpus.contentHash);
  });

  it('loads the State of the Union addresses', async () => {
    const corpus = await loadCorpus('sotu');
    expect(corpus.name).toBe('sotu');
    expect(corpus.documents.length).toBeGreaterThan(200);
    expect(corpus.documents[0]).toMatch(/^State of the Union, 1790, George Washington\n\n/);
    expect(corpus.documents.reduce((n, d) => n + d.length, 0)).toBeGreaterThan(10_000_000);
  });

  it('reads .txt (one document) and .jsonl (one per line) files, and folders recursively in sorted order', async () => {
    const root = join(dir, 'mixed');
    await mkdir(join(root, 'b-sub', 'deeper'), { recursive: true });
    await writeFile(join(root, 'a.txt'), 'first document\nwith two lines');
    await writeFile(join(root, 'c.jsonl'), '{"text": "line one"}\r\n\n{"text": "line two", "id": 2}\n{"text": ""}\n');
    await writeFile(join(root, 'b-sub', 'deeper', 'z.TXT'), 'deep 😀');
    await writeFile(join(root, 'README.md'), '# not corpus');
    await writeFile(join(root, '.hidden.txt'), 'hidden');
    await writeFile(join(root, 'empty.txt'), '');
    const corpus = await loadCorpus(root);
    expect(corpus.documents).toEqual(['first document\nwith two lines', 'deep 😀', 'line one', 'line two']);
    expect(corpus.name).toBe('mixed');
    expect(corpus.sourceDescription).toMatch(/4 document\(s\) from 4 file\(s\).*skipped 1 other file/);

    const file = await loadCorpus(join(root, 'c.jsonl'));
    expect(file.documents).toEqual(['line one', 'line two']);
    const both = await loadCorpus([join(root, 'a.txt'), 'moby-dick']);
    expect(both.name).toBe('a.txt+moby-dick');
    expect(both.documents).toHaveLength(140);
  });

  it('hashes content, not location', async () => {
    await writeFile(join(dir, 'one.txt'), 'same text');
    await mkdir(join(dir, 'copy'));
    await writeFile(join(dir, 'copy', 'two.txt'), 'same text');
    await writeFile(join(dir, 'other.txt'), 'other text');
    const a = await loadCorpus(join(dir, 'one.txt'));
    expect((await loadCorpus(join(dir, 'copy'))).contentHash).toBe(a.contentHash);
    expect((await loadCorpus(join(dir, 'other.txt'))).contentHash).not.toBe(a.contentHash);
  });

  it('refuses a missing path, naming it', async () => {
    await expectTrainerError(() => loadCorpus(join(dir, 'nope.txt')), DataErrorCode.CORPUS_NOT_FOUND, /nope\.txt/);
    await expectTrainerError(() => loadCorpus([]), DataErrorCode.CORPUS_NOT_FOUND, /no corpus/);
    await expectTrainerError(() => loadCorpus(''), DataErrorCode.CORPUS_NOT_FOUND);
  });

  it('refuses an unreadable file, naming it', async () => {
    const loop = join(dir, 'loop.txt');
    await symlink(loop, loop); // stat fails with ELOOP
    await expectTrainerError(() => loadCorpus(loop), DataErrorCode.CORPUS_UNREADABLE, /loop\.txt/);
    const loopDir = join(dir, 'loopdir');
    await mkdir(loopDir);
    await symlink(join(loopDir, 'x.txt'), join(loopDir, 'x.txt'));
    await expectTrainerError(() => loadCorpus(loopDir), DataErrorCode.CORPUS_UNREADABLE, /x\.txt/);
  });

  it.skipIf(process.getuid?.() === 0)('refuses a file without read permission (not testable as root)', async () => {
    const locked = join(dir, 'locked.txt');
    await writeFile(locked, 'secret');
    await chmod(locked, 0o000);
    await expectTrainerError(() => loadCorpus(locked), DataErrorCode.CORPUS_UNREADABLE, /locked\.txt/);
  });

  it('refuses unsupported extensions, binary files and malformed .jsonl lines, naming file:line', async () => {
    const json = join(dir, 'data.json');
    await writeFile(json, '{"text": "x"}');
    await expectTrainerError(() => loadCorpus(json), DataErrorCode.CORPUS_FORMAT, /data\.json.*unsupported extension "\.json"/);
    const binary = join(dir, 'binary.txt');
    await writeFile(binary, Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x00]));
    await expectTrainerError(() => loadCorpus(binary), DataErrorCode.CORPUS_FORMAT, /binary\.txt is not valid UTF-8/);
    const badJson = join(dir, 'bad.jsonl');
    await writeFile(badJson, '{"text": "ok"}\n{"text": "unterminated\n');
    await expectTrainerError(() => loadCorpus(badJson), DataErrorCode.CORPUS_FORMAT, /bad\.jsonl:2: line is not valid JSON/);
    const noText = join(dir, 'notext.jsonl');
    await writeFile(noText, '{"text": "ok"}\n\n{"body": "x"}\n');
    await expectTrainerError(() => loadCorpus(noText), DataErrorCode.CORPUS_FORMAT, /notext\.jsonl:3: line has no string field "text"/);
    const numText = join(dir, 'numtext.jsonl');
    await writeFile(numText, '{"text": 5}\n');
    await expectTrainerError(() => loadCorpus(numText), DataErrorCode.CORPUS_FORMAT, /numtext\.jsonl:1/);
    const array = join(dir, 'array.jsonl');
    await writeFile(array, '["text"]\n');
    await expectTrainerError(() => loadCorpus(array), DataErrorCode.CORPUS_FORMAT, /array\.jsonl:1/);
  });

  it('refuses empty corpora: empty file, empty folder, folder of other files', async () => {
    const empty = join(dir, 'empty-file.txt');
    await writeFile(empty, '');
    await expectTrainerError(() => loadCorpus(empty), DataErrorCode.CORPUS_EMPTY, /empty-file\.txt/);
    const emptyDir = join(dir, 'empty-dir');
    await mkdir(emptyDir);
    await expectTrainerError(() => loadCorpus(emptyDir), DataErrorCode.CORPUS_EMPTY, /empty-dir/);
    const docsDir = join(dir, 'docs-only');
    await mkdir(docsDir);
    await writeFile(join(docsDir, 'notes.md'), 'markdown');
    await expectTrainerError(() => loadCorpus(docsDir), DataErrorCode.CORPUS_EMPTY, /skipped 1 file\(s\) with other extensions/);
    const blank = join(dir, 'blank.jsonl');
    await writeFile(blank, '\n\n{"text": ""}\n');
    await expectTrainerError(() => loadCorpus(blank), DataErrorCode.CORPUS_EMPTY, /blank\.jsonl/);
  });

  it('refuses corpora over the size limit', async () => {
    const big = join(dir, 'big.txt');
    await writeFile(big, 'x'.repeat(1000));
    await expectTrainerError(() => loadCorpus(big, { maxTotalBytes: 999 }), DataErrorCode.CORPUS_TOO_LARGE, /1000 bytes.*999/);
    expect((await loadCorpus(big, { maxTotalBytes: 1000 })).documents).toHaveLength(1);
    await expectTrainerError(() => loadCorpus(big, { maxFileBytes: 500 }), DataErrorCode.CORPUS_TOO_LARGE, /big\.txt has 1000 bytes, over the per-file limit of 500/);
    const folder = join(dir, 'big-folder');
    await mkdir(folder);
    await writeFile(join(folder, 'a.txt'), 'x'.repeat(600));
    await writeFile(join(folder, 'b.txt'), 'y'.repeat(600));
    await expectTrainerError(() => loadCorpus(folder, { maxTotalBytes: 1000 }), DataErrorCode.CORPUS_TOO_LARGE, /1200 bytes/);
    expect((await loadCorpus(folder, { maxFileBytes: 600 })).documents).toHaveLength(2);
  });
});
