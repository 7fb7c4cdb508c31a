import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import { PROGRESS_FORMAT, PROGRESS_FORMAT_VERSION, type PrepareProgress, datasetIdOf, datasetIdentity, describeMismatch, readProgress, writeProgress } from './progress-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trainer-progress-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const identity = datasetIdentity({ tokenizerHash: 'ab'.repeat(32), vocabSize: 300, eotToken: 299, sources: [{ path: '/a.jsonl', bytes: 10, mtimeMs: 1 }], valFraction: 0.01, shardBytes: 4096 });

describe('progress file', () => {
  it('round-trips, and is absent before a run', async () => {
    const progress: PrepareProgress = {
      format: PROGRESS_FORMAT, version: PROGRESS_FORMAT_VERSION, datasetId: datasetIdOf(identity), identity,
      position: { source: 0, offset: 5, line: 1 }, documents: 1, tokens: 7, textBytes: 4,
      splits: { train: { completed: [], open: { index: 0, tokens: 7, documents: 1 } }, val: { completed: [], open: { index: 0, tokens: 0, documents: 0 } } }, runs: 1,
    };
    expect(await readProgress(join(dir, 'none.json'))).toBeUndefined();
    await writeProgress(join(dir, 'p.json'), progress);
    expect(await readProgress(join(dir, 'p.json'))).toEqual(progress);
    await writeFile(join(dir, 'v2.json'), JSON.stringify({ ...progress, version: 2 }));
    await expectTrainerError(() => readProgress(join(dir, 'v2.json')), DataErrorCode.DATASET_FORMAT, /version 2/);
    await writeFile(join(dir, 'foreign.json'), JSON.stringify({ format: 'x' }));
    await expectTrainerError(() => readProgress(join(dir, 'foreign.json')), DataErrorCode.DATASET_FORMAT, /format/);
  });

  it('says what differs between two identities', () => {
    expect(describeMismatch(identity, identity)).toBeUndefined();
    expect(describeMismatch(identity, { ...identity, tokenizerHash: 'cd'.repeat(32) })).toMatch(/another tokenizer/);
    expect(describeMismatch(identity, { ...identity, sources: [{ path: '/a.jsonl', bytes: 11, mtimeMs: 1 }] })).toMatch(/\/a\.jsonl as it was then/);
    expect(describeMismatch(identity, { ...identity, sources: [] })).toMatch(/0 source file/);
    expect(describeMismatch(identity, { ...identity, shardBytes: 1 })).toMatch(/--shard-size/);
    expect(datasetIdOf(identity)).not.toBe(datasetIdOf({ ...identity, valFraction: 0.02 }));
  });
});
