import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { maxParamDiff, tinyRun, type TinyRun } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { inParallel, killAllStarted, runTrainer, type RunResult } from './helpers/processes.js';
import { writeRepeatedDataset } from './helpers/repeated-dataset.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Training on prepared datasets (`trainer data prepare`), multi-process: every worker reads only
 * its micro-batches' windows by ranges, so the data order is a function of seed and step alone:
 * any worker count and layout follow one worker, a resume is bitwise, a mixture is deterministic,
 * a dataset of another tokenizer is refused, and memory per worker does not grow with the
 * dataset (a dataset of over 4 GB of tokens, 2 workers, 20 steps, each worker's peak RSS < 1 GB).
 */
const ws = tinyWorkspace();
const dataset = ws.out('dataset');
const other = ws.out('dataset-b');
const tokenizer = ws.out('tokenizer.json');
/** The tiny job's workspace with a prepared dataset (or a mixture) as its --data. */
const on = (data: string) => ({ ...ws, corpus: data });
const EVAL = ['--eval-batches', '2'];

beforeAll(async () => {
  // A corpus of several thousand short documents (.jsonl), a tokenizer, and two datasets of it.
  const sentences = readFileSync(ws.corpus, 'utf8').split('\n');
  writeFileSync(ws.out('docs.jsonl'), sentences.map((s, i) => JSON.stringify({ text: `${s} ${sentences[(i * 3) % sentences.length]}` })).join('\n'));
  writeFileSync(ws.out('docs-b.jsonl'), sentences.map((s) => JSON.stringify({ text: s.toUpperCase() })).join('\n'));
  const ok = (r: RunResult) => expect(r.code, r.stdout + r.stderr).toBe(0);
  ok(await runTrainer(['tokenizer', 'train', '--data', ws.out('docs.jsonl'), '--vocab', '300', '--out', tokenizer]));
  // The two datasets (of the tokenizer) are prepared at once.
  (await Promise.all([
    runTrainer(['data', 'prepare', '--data', ws.out('docs.jsonl'), '--tokenizer', tokenizer, '--out', dataset, '--shard-size', '4KiB', '--val-fraction', '0.1', '--threads', '2']),
    runTrainer(['data', 'prepare', '--data', ws.out('docs-b.jsonl'), '--tokenizer', tokenizer, '--out', other, '--shard-size', '4KiB', '--val-fraction', '0.1', '--threads', '1']),
  ])).forEach(ok);
}, 120_000);

afterAll(() => rmSync(ws.dir, { recursive: true, force: true }));

describe('training on prepared datasets (multi-process)', () => {
  it('1 worker = 2 workers with ZeRO 1 = dp 2 x tp 2; a mixture is the same on 1 and 2 workers', async () => {
    const layouts = [[2, ['--zero', '1']], [4, ['--tp', '2']]] as [number, string[]][];
    const mix = on(`${dataset}=0.7,${other}=0.3`);
    // The runs are independent (each its own folder): they run 2 at a time.
    const [ref, one, two, ...runs] = await inParallel([
      () => trainedRun(on(dataset), 'ref', 1, EVAL),
      () => trainedRun(mix, 'mix1', 1, EVAL),
      () => trainedRun(mix, 'mix2', 2, EVAL),
      ...layouts.map(([nodes, layout]) => () => trainedRun(on(dataset), `n${nodes}${layout.join('')}`, nodes, [...EVAL, ...layout])),
    ], 2);
    expect(ref!.output).toContain('read by ranges');
    for (const [i, [nodes, layout]] of layouts.entries()) {
      expectSameTrajectory(runs[i]!, ref!, `${nodes} workers ${layout.join(' ')}`, { lossRtol: 2e-5, paramAtol: 1e-4 });
    }
    expectSameTrajectory(two!, one!, 'mixture on 2 workers', { lossRtol: 2e-5, paramAtol: 1e-4 });
    expect(one!.summary.losses, 'the mixture reads the other dataset too').not.toEqual(ref!.summary.losses);
  }, 300_000);

  it('resumes bitwise; a dataset of another tokenizer, or mixed with a corpus, is refused before any worker starts', async () => {
    const job = [...EVAL, '--steps', '6', '--eval-every', '3'];
    // The refusals (below) do not depend on the runs: they run beside them.
    const otherTokenizer = ws.out('other-tokenizer.json');
    const refusals = (async () => {
      const trained = await runTrainer(['tokenizer', 'train', '--data', ws.out('docs-b.jsonl'), '--vocab', '300', '--out', otherTokenizer]);
      return Promise.all([trained, tinyRun(on(dataset), 'refused', 1, [...EVAL, '--tokenizer', otherTokenizer]), tinyRun(on(dataset), 'mixed', 1, ['--data', dataset, ws.corpus])]);
    })();
    const full = await trainedRun(on(dataset), 'full', 2, [...job, '--save-every', '3']);
    const resumed: TinyRun = await tinyRun(on(dataset), 'resumed', 2, [...job, '--resume', join(full.out, 'checkpoints', 'step-000003')]);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.summary.losses.slice(3)).toEqual(full.summary.losses.slice(3));
    expect(resumed.modelBytes!.equals(full.modelBytes!), 'model.safetensors differs').toBe(true);
    expect(maxParamDiff(resumed, full)).toBe(0);

    const [trained, refused, mixed] = await refusals;
    expect(trained.code).toBe(0);
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/TRAINER_ERR_DATASET_TOKENIZER: the dataset .* was prepared with another tokenizer/);
    expect(mixed.code).toBe(2);
    expect(mixed.output).toContain('TRAINER_ERR_DATA_MIXTURE');
  }, 300_000);

  it('a dataset of over 4 GB of tokens: 2 workers train 20 steps, each with a peak RSS under 1 GB', async () => {
    const big = ws.out('big');
    const manifest = await writeRepeatedDataset(dataset, big, 4.05 * 2 ** 30);
    try {
      expect(manifest.splits.train.tokens * manifest.bytesPerToken).toBeGreaterThan(4 * 2 ** 30);
      const run = await trainedRun(on(big), 'big-run', 2, [...EVAL, '--steps', '20', '--eval-every', '20']);
      expect(run.summary.losses.every((l) => Number.isFinite(l))).toBe(true);
      for (const rank of [0, 1]) {
        const peak = Math.max(...run.metrics.filter((m) => m.rank === rank && typeof m.peak_rss_bytes === 'number').map((m) => m.peak_rss_bytes as number));
        expect(peak, `rank ${rank} peak RSS`).toBeGreaterThan(0);
        expect(peak, `rank ${rank} peak RSS`).toBeLessThan(2 ** 30);
        console.log(`prepared dataset of ${(manifest.splits.train.tokens * manifest.bytesPerToken / 2 ** 30).toFixed(2)} GiB of tokens: rank ${rank} peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
      }
    } finally {
      rmSync(big, { recursive: true, force: true });
    }
  }, 300_000);
});
