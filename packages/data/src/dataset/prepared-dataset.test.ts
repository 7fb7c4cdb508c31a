import { cp, mkdtemp, open, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import type { TokenArray } from '../internal/token-buffer.js';
import { DATASET_FORMAT, DATASET_FORMAT_VERSION, type DatasetManifest, type ShardEntry } from './manifest.js';
import { prepareDataset } from './prepare-dataset.js';
import { PreparedDataset } from './prepared-dataset.js';
import { SHARD_HEADER_BYTES, encodeShardHeader, shardSourceHash } from './shard-format.js';
import { expectedSplits, jsonlOf, mobyChapters, smallTokenizer, writeText } from './test-fixtures.js';

let root: string;
let dir: string;
let want: { train: TokenArray; val: TokenArray };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'trainer-prepared-'));
  const { path, tokenizer } = await smallTokenizer(root);
  const docs = mobyChapters(40);
  const src = await writeText(join(root, 'src/a.jsonl'), jsonlOf(docs));
  dir = join(root, 'ds');
  await prepareDataset({ data: [src], tokenizer: path, out: dir, threads: 1, shardBytes: 4096, valFraction: 0.2 });
  want = expectedSplits(tokenizer, docs, 0.2);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A copy of the dataset to damage. */
async function copy(name: string): Promise<string> {
  const to = join(root, name);
  await cp(dir, to, { recursive: true });
  return to;
}

describe('PreparedDataset', () => {
  it('exposes the manifest and reads whole splits', async () => {
    const ds = await PreparedDataset.open(dir);
    expect(ds.dtype).toBe('uint16');
    expect(ds.vocabSize).toBe(300);
    expect(ds.tokenizerHash).toBe(ds.manifest.tokenizer.hash);
    expect(ds.length('train')).toBe(want.train.length);
    expect(ds.length('val')).toBe(want.val.length);
    expect(ds.manifest.splits.train.shards.length).toBeGreaterThan(20);
    expect(await ds.read('train', 0, ds.length('train'))).toEqual(want.train);
    expect(await ds.read('val', 0, ds.length('val'))).toEqual(want.val);
    await ds.close();
  });

  it('reads ranges within a shard, across two or more shards, at the ends, and empty ones, with few open files', async () => {
    const ds = await PreparedDataset.open(dir, { maxOpenFiles: 2 });
    const shards = ds.manifest.splits.train.shards;
    const n = ds.length('train');
    const boundary = shards[0].tokens + shards[1].tokens; // start of shard 2
    const ranges: Array<[number, number]> = [
      [0, 1], [0, 10], [boundary - 1, 2], [boundary, 5], [boundary - 3, shards[2].tokens + shards[3].tokens + 6],
      [n - 1, 1], [n - 100, 100], [n, 0], [0, 0], [Math.floor(n / 2), 0],
    ];
    // Concurrent reads share the handle cache (more reads than open files at once).
    const reads = await Promise.all(ranges.map(([start, count]) => ds.read('train', start, count)));
    ranges.forEach(([start, count], i) => expect(reads[i], `[${start}, +${count})`).toEqual(want.train.slice(start, start + count)));
    for (let start = 0; start < n; start += 997) expect(await ds.read('train', start, Math.min(3000, n - start))).toEqual(want.train.slice(start, start + 3000));
    await ds.close();
  });

  it('refuses reads outside a split', async () => {
    const ds = await PreparedDataset.open(dir);
    const n = ds.length('val');
    for (const [start, count] of [[-1, 1], [0, -1], [n, 1], [n - 2, 3], [0.5, 1], [0, Number.NaN]]) {
      await expectTrainerError(() => ds.read('val', start, count), DataErrorCode.DATASET_RANGE, /val split/);
    }
    await expectTrainerError(() => ds.read('test' as 'val', 0, 1), DataErrorCode.DATASET_RANGE, /unknown split/);
    await ds.close();
  });

  it('refuses a missing, foreign, truncated, swapped or damaged shard when it is read, with clear codes', async () => {
    const missing = await copy('missing');
    const shards = (await PreparedDataset.open(dir)).manifest.splits.train.shards;
    await rm(join(missing, shards[1].file));
    const ds = await PreparedDataset.open(missing); // opening reads only the manifest
    expect(await ds.read('train', 0, 5)).toEqual(want.train.slice(0, 5));
    await expectTrainerError(() => ds.read('train', shards[0].tokens - 1, 2), DataErrorCode.TOKEN_FILE_NOT_FOUND, /train-00001\.tok/);
    await ds.close();

    const foreign = await copy('foreign');
    const bytes = await readFile(join(foreign, shards[0].file));
    bytes.write('NOTTOKEN', 0, 'latin1');
    await writeFile(join(foreign, shards[0].file), bytes);
    await expectTrainerError(async () => (await PreparedDataset.open(foreign)).read('train', 0, 1), DataErrorCode.TOKEN_FILE_FORMAT, /magic/);

    const cut = await copy('truncated');
    await truncate(join(cut, shards[2].file), shards[2].bytes - 2);
    await expectTrainerError(async () => (await PreparedDataset.open(cut)).read('train', shards[0].tokens + shards[1].tokens, 1), DataErrorCode.TOKEN_FILE_TRUNCATED, /train-00002/);

    const swapped = await copy('swapped');
    await rename(join(swapped, shards[3].file), join(swapped, 'x'));
    await rename(join(swapped, shards[4].file), join(swapped, shards[3].file));
    await rename(join(swapped, 'x'), join(swapped, shards[4].file));
    const start3 = shards.slice(0, 3).reduce((t, s) => t + s.tokens, 0);
    await expectTrainerError(async () => (await PreparedDataset.open(swapped)).read('train', start3, 1), DataErrorCode.TOKEN_FILE_MISMATCH, /another place/);

    // A flipped payload bit passes the cheap checks; verify() hashes and finds it.
    const flipped = await copy('flipped');
    const shard = await readFile(join(flipped, shards[5].file));
    shard[SHARD_HEADER_BYTES + 1] ^= 1;
    await writeFile(join(flipped, shards[5].file), shard);
    await expect((await PreparedDataset.open(dir)).verify()).resolves.toBeUndefined();
    await expectTrainerError(async () => (await PreparedDataset.open(flipped)).verify(), DataErrorCode.TOKEN_FILE_FORMAT, /SHA-256 differs/);
  });

  it('refuses a missing, foreign or newer manifest', async () => {
    await expectTrainerError(() => PreparedDataset.open(join(root, 'nothing-here')), DataErrorCode.DATASET_FORMAT, /does not exist/);
    const other = await copy('manifests');
    const manifest = JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8')) as DatasetManifest;
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ ...manifest, version: DATASET_FORMAT_VERSION + 1 }));
    const err = await expectTrainerError(() => PreparedDataset.open(other), DataErrorCode.DATASET_FORMAT, /version 2 is not supported/);
    expect(err.hint).toMatch(/upgrade/);
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ ...manifest, format: 'something-else' }));
    await expectTrainerError(() => PreparedDataset.open(other), DataErrorCode.DATASET_FORMAT, /not a trainer dataset manifest/);
    const tampered = { ...manifest, splits: { ...manifest.splits, train: { ...manifest.splits.train, tokens: manifest.splits.train.tokens + 1 } } };
    await writeFile(join(other, 'manifest.json'), JSON.stringify(tampered));
    await expectTrainerError(() => PreparedDataset.open(other), DataErrorCode.DATASET_FORMAT, /add up to/);
  });

  it('addresses splits beyond 2^32 tokens (sparse shard files of 2^31 + 5 tokens)', async () => {
    const big = join(root, 'big');
    const tokens = 2 ** 31 + 5;
    const datasetId = 'ab'.repeat(32);
    const tokenizerHash = 'cd'.repeat(32);
    const shards: ShardEntry[] = [];
    for (let i = 0; i < 3; i++) {
      const file = `train-0000${i}.tok`;
      const path = await writeText(join(big, file), '');
      await truncate(path, SHARD_HEADER_BYTES + 2 * tokens); // sparse: no disk used
      const handle = await open(path, 'r+');
      await handle.write(encodeShardHeader({ bytesPerToken: 2, tokens, vocabSize: 1000, tokenizerHash, sourceHash: shardSourceHash(datasetId, file), payloadSha256: '00'.repeat(32) }), 0, SHARD_HEADER_BYTES, 0);
      // Marks: the last 2 tokens of the shard are 100*i+1, 100*i+2; its first two 100*i+3, 100*i+4.
      await handle.write(new Uint8Array(new Uint16Array([100 * i + 1, 100 * i + 2]).buffer), 0, 4, SHARD_HEADER_BYTES + 2 * (tokens - 2));
      await handle.write(new Uint8Array(new Uint16Array([100 * i + 3, 100 * i + 4]).buffer), 0, 4, SHARD_HEADER_BYTES);
      await handle.close();
      shards.push({ file, tokens, documents: 1, bytes: SHARD_HEADER_BYTES + 2 * tokens, sha256: '00'.repeat(32), indexFile: `train-0000${i}.idx`, indexBytes: 40, indexSha256: '00'.repeat(32) });
    }
    const manifest: DatasetManifest = {
      format: DATASET_FORMAT, version: DATASET_FORMAT_VERSION, datasetId, tokenizer: { hash: tokenizerHash, vocabSize: 1000, eotToken: 999 }, dtype: 'uint16', bytesPerToken: 2,
      valFraction: 0, shardBytes: 2 ** 33, splits: { train: { tokens: 3 * tokens, documents: 3, shards }, val: { tokens: 0, documents: 0, shards: [] } },
      totals: { tokens: 3 * tokens, documents: 3, textBytes: 0 }, sources: [], created: new Date().toISOString(),
    };
    await writeFile(join(big, 'manifest.json'), JSON.stringify(manifest));
    const ds = await PreparedDataset.open(big);
    expect(ds.length('train')).toBe(3 * tokens);
    expect(ds.length('train')).toBeGreaterThan(2 ** 32);
    expect([...(await ds.read('train', tokens - 2, 4))]).toEqual([1, 2, 103, 104]);
    expect([...(await ds.read('train', 2 * tokens - 2, 4))]).toEqual([101, 102, 203, 204]);
    expect([...(await ds.read('train', 3 * tokens - 3, 3))]).toEqual([0, 201, 202]);
    await expectTrainerError(() => ds.read('train', 3 * tokens - 1, 2), DataErrorCode.DATASET_RANGE);
    await ds.close();
  });
});
