import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import { SourceReader, type UnitBatch } from './source-reader.js';
import { type DatasetSource, resolveSources, sourceKind } from './sources.js';
import { writeText, zstdStoredFrames } from './test-fixtures.js';

let dir: string;
// Lines of many sizes, some longer than the 1 MiB read chunks, one with multi-byte characters.
const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `${i} ${'é🐋 whale '.repeat(i % 7 === 3 ? 120_000 : (i * 37) % 500)}` }));
const text = lines.join('\n');
const hasZstd = ['/usr/bin/zstd', '/bin/zstd', '/usr/local/bin/zstd'].some((p) => existsSync(p));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trainer-source-reader-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function source(path: string): Promise<DatasetSource> {
  return (await resolveSources([path])).sources[0];
}

async function units(src: DatasetSource, from = { offset: 0, line: 0 }, batchBytes = 100_000): Promise<{ texts: string[]; batches: UnitBatch[] }> {
  const batches: UnitBatch[] = [];
  for await (const b of new SourceReader(src, 0, { batchBytes }).batches(from)) batches.push(b);
  const decoder = new TextDecoder();
  const texts = batches.flatMap((b) => Array.from({ length: b.count }, (_, i) => b.texts?.[i] ?? decoder.decode(b.bytes.subarray(i === 0 ? 0 : b.ends[i - 1], b.ends[i]))));
  return { texts, batches };
}

describe('SourceReader', () => {
  it('splits .jsonl into lines across read chunks, with the offset after each line', async () => {
    const path = await writeText(join(dir, 'a.jsonl'), text);
    const { texts, batches } = await units(await source(path));
    expect(texts).toEqual(lines);
    const offsets = batches.flatMap((b) => [...b.offsets]);
    let at = 0;
    expect(offsets).toEqual(lines.map((l, i) => (at += Buffer.byteLength(l) + (i < lines.length - 1 ? 1 : 0))));
    expect(batches.map((b) => b.firstLine)).toEqual(batches.map((_, i) => batches.slice(0, i).reduce((n, x) => n + x.count, 0)));
  });

  it('resumes from a position in plain, gzip and zstd files', async () => {
    const cut = 17;
    const offset = lines.slice(0, cut).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const files = [
      await writeText(join(dir, 'r.jsonl'), text),
      await writeText(join(dir, 'r.jsonl.gz'), gzipSync(Buffer.from(text))),
      await writeText(join(dir, 'r.jsonl.zst'), zstdStoredFrames(Buffer.from(text), 300_000)),
    ];
    for (const path of files) {
      const { texts, batches } = await units(await source(path), { offset, line: cut });
      expect(texts, path).toEqual(lines.slice(cut));
      expect(batches[0].firstLine).toBe(cut);
    }
  });

  it.skipIf(!hasZstd)('reads what the zstd tool writes', async () => {
    const path = await writeText(join(dir, 'z.jsonl'), text);
    execFileSync('zstd', ['-q', '-3', path, '-o', `${path}.zst`]);
    expect((await units(await source(`${path}.zst`))).texts).toEqual(lines);
  });

  it('reads a .txt file as one unit, and refuses a unit above the limit', async () => {
    const path = await writeText(join(dir, 'one.txt.gz'), gzipSync(Buffer.from('line 1\nline 2\n')));
    expect((await units(await source(path))).texts).toEqual(['line 1\nline 2\n']);
    expect((await units(await source(path), { offset: 14, line: 1 })).texts).toEqual([]);
    const reader = new SourceReader(await source(join(dir, 'a.jsonl')), 0, { batchBytes: 1000, maxUnitBytes: 100_000 });
    await expectTrainerError(async () => {
      for await (const _ of reader.batches({ offset: 0, line: 0 })) void _;
    }, DataErrorCode.CORPUS_TOO_LARGE, /a\.jsonl:4/);
  });

  it('expands folders in sorted order and names the kinds of files', async () => {
    expect(sourceKind('x.JSONL.ZST')).toEqual({ format: 'jsonl', compression: 'zstd' });
    expect(sourceKind('x.txt.gz')).toEqual({ format: 'txt', compression: 'gzip' });
    expect(sourceKind('x.json')).toBeUndefined();
    const tree = join(dir, 'tree');
    for (const f of ['b/2.txt', 'b/1.jsonl', 'a.txt.zst', '.hidden.txt', 'c.md']) await writeText(join(tree, f), 'x');
    const { sources, skipped } = await resolveSources([tree, 'sotu']);
    expect(sources.map((s) => s.entry.path.replace(tree, ''))).toEqual(['/a.txt.zst', '/b/1.jsonl', '/b/2.txt', 'builtin:sotu']);
    expect(skipped.map((p) => p.replace(tree, ''))).toEqual(['/c.md']);
    await expectTrainerError(() => resolveSources([join(tree, 'c.md')]), DataErrorCode.CORPUS_FORMAT);
  });
});
