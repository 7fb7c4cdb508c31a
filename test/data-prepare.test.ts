import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PreparedDataset, loadCorpus, trainBpe } from '@trainer/data';
import { killAllStarted, logLines, runTrainer, startTrainer, waitFor } from './helpers/processes.js';

afterEach(() => killAllStarted());

/**
 * `trainer data prepare` end to end: the files do not depend on the thread count, and a run
 * killed (kill -9) or interrupted (SIGINT) resumes to the same files without re-tokenizing the
 * shards it had completed.
 */
describe('trainer data prepare', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-data-prepare-'));
  const src = join(dir, 'src');
  const tokenizer = join(dir, 'tokenizer.json');
  const otherTokenizer = join(dir, 'tokenizer-280.json');
  let documents = 0;

  beforeAll(async () => {
    const chapters = (await loadCorpus('moby-dick')).documents;
    const few = chapters.slice(0, 12);
    await trainBpe(few, { vocabSize: 300 }).save(tokenizer);
    await trainBpe(few, { vocabSize: 280 }).save(otherTokenizer);
    // About 12 MB: ten copies of the book, one line per chapter; one copy gzipped, in a subfolder.
    mkdirSync(join(src, 'more'), { recursive: true });
    const jsonl = chapters.map((text) => JSON.stringify({ text })).join('\n') + '\n';
    for (let c = 0; c < 9; c++) writeFileSync(join(src, `part-${c}.jsonl`), jsonl);
    writeFileSync(join(src, 'more', 'part-9.jsonl.gz'), gzipSync(jsonl));
    documents = 10 * chapters.length;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const args = (out: string, threads: number, extra: string[] = []) => ['data', 'prepare', '--data', src, '--tokenizer', tokenizer, '--out', out, '--threads', String(threads), '--shard-size', '256KiB', '--val-fraction', '0.05', ...extra];

  /** Every file of the folder; the manifest without its creation time. */
  function files(out: string): Record<string, string> {
    const all: Record<string, string> = {};
    for (const name of readdirSync(out).sort()) {
      const bytes = readFileSync(join(out, name));
      all[name] = name === 'manifest.json' ? JSON.stringify({ ...JSON.parse(bytes.toString()), created: '' }) : bytes.toString('base64');
    }
    return all;
  }

  function summary(stdout: string): Record<string, unknown> {
    const line = logLines(stdout).find((l) => l.status !== undefined);
    expect(line, stdout).toBeDefined();
    return line!;
  }

  it('writes the same files with 1 and 2 threads', async () => {
    const one = await runTrainer(args(join(dir, 'one'), 1));
    expect(one.code, one.stdout + one.stderr).toBe(0);
    const two = await runTrainer(args(join(dir, 'two'), 2));
    expect(two.code, two.stderr).toBe(0);
    expect(files(join(dir, 'two'))).toEqual(files(join(dir, 'one')));
    expect(summary(one.stdout)).toMatchObject({ status: 'done', documents, tokenizedDocuments: documents, resumedShards: null });
    const ds = await PreparedDataset.open(join(dir, 'one'));
    expect(ds.length('val')).toBeGreaterThan(0);
    expect(ds.manifest.splits.train.shards.length).toBeGreaterThan(20);
    await ds.verify();
    await ds.close();
  }, 120_000);

  it('resumes a run killed with SIGKILL without redoing its completed shards, to the same files', async () => {
    const out = join(dir, 'killed');
    const run = startTrainer(args(out, 2));
    const progress = join(out, 'progress.json');
    const completed = () => {
      try {
        return (JSON.parse(readFileSync(progress, 'utf8')) as { splits: { train: { completed: unknown[] } } }).splits.train.completed.length;
      } catch {
        return 0; // not written yet
      }
    };
    await waitFor(() => completed() >= 3 || run.child.exitCode !== null, 60_000, 'three completed shards');
    run.child.kill('SIGKILL');
    const crashed = await run.result;
    expect(crashed.signal, 'the run finished before it could be killed').toBe('SIGKILL');
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
    const before = JSON.parse(readFileSync(progress, 'utf8')) as { documents: number; splits: { train: { completed: unknown[] }; val: { completed: unknown[] } } };
    const resumed = await runTrainer(args(out, 1));
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    const s = summary(resumed.stdout);
    expect(s.resumedShards).toBe(before.splits.train.completed.length + before.splits.val.completed.length);
    expect(s.resumedFromDocument).toBe(before.documents);
    expect(s.tokenizedDocuments).toBe(documents - before.documents);
    expect(resumed.stdout).toMatch(/resuming .* completed shard\(s\) verified/);
    expect(files(out)).toEqual(files(join(dir, 'one')));
  }, 120_000);

  it('saves progress on SIGINT (exit 130) and finishes when run again; other inputs are refused', async () => {
    const out = join(dir, 'interrupted');
    const run = startTrainer(args(out, 1));
    await waitFor(() => existsSync(join(out, 'train-00001.tok')) || run.child.exitCode !== null, 60_000, 'two completed shards');
    run.child.kill('SIGINT');
    const stopped = await run.result;
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(130);
    expect(stopped.stdout).toMatch(/progress saved/);
    const refused = await runTrainer(args(out, 1, ['--tokenizer', otherTokenizer]));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/TRAINER_ERR_DATASET_MISMATCH: .* unfinished .* another tokenizer/);
    expect(refused.stderr).toMatch(/hint: .*--overwrite/);
    const resumed = await runTrainer(args(out, 2));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(files(out)).toEqual(files(join(dir, 'one')));
    const again = await runTrainer(args(out, 2));
    expect(summary(again.stdout)).toMatchObject({ status: 'already-done', tokenizedDocuments: 0 });
  }, 120_000);
});
