import { afterEach, describe, expect, it } from 'vitest';
import { estimateModelState, type ZeroStage } from '@trainer/engine';
import { resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { inParallel, killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * ZeRO, multi-process: every stage on 2, 3 and 4 workers (shards that do not divide tensors or
 * units evenly), with and without gradient accumulation, follows the single-worker data-parallel
 * trajectory; the model-state memory each rank reports matches `estimate-memory`'s prediction;
 * the traffic per step is what the ZeRO paper says.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 2e-5;
const MODEL = ['--layers', '2', '--global-batch', '12', '--steps', '5', '--eval-every', '5'];

const trainRun = (ws: Workspace, name: string, nodes: number, extra: string[]) => trainedRun(ws, name, nodes, [...MODEL, ...extra]);
const TOLERANCE = { lossRtol: LOSS_RTOL, paramAtol: PARAM_ATOL };

/** 4-worker runs of each stage, kept by the first test for the second (which makes any that are missing). */
const fourWorkers = new Map<number, Awaited<ReturnType<typeof trainRun>>>();

describe('ZeRO stages (multi-process)', () => {
  it('stages 1-3 on 2, 3 and 4 workers, with accumulation, follow plain data parallelism on 1 worker', async () => {
    const ws = tinyWorkspace();
    const cases = [1, 2, 3].flatMap((stage) => [[2, 0], [3, 2], [4, 0]].map(([nodes, micro]) => [stage, nodes, micro] as const));
    // The runs are independent (each its own folder): the reference and the cases run a few at a time.
    const [ref, ...runs] = await inParallel([
      () => trainRun(ws, 'ref', 1, ['--zero', '0']),
      ...cases.map(([stage, nodes, micro]) => () => trainRun(ws, `z${stage}-${nodes}-${micro}`, nodes, ['--zero', String(stage), ...(micro ? ['--micro-batch', String(micro)] : [])])),
      // for the second test: stage 0 on 4 workers
      () => trainRun(ws, 'mem0', 4, ['--zero', '0']),
    ], 2);
    expect(ref!.summary.losses[4]!).toBeLessThan(ref!.summary.losses[0]!);
    for (const [i, [stage, nodes, micro]] of cases.entries()) {
      const run = runs[i]!;
      expectSameTrajectory(run, ref!, `stage ${stage} on ${nodes} workers, micro ${micro || 'all'}`, TOLERANCE);
      if (nodes === 4 && !micro) fourWorkers.set(stage, run);
    }
    fourWorkers.set(0, runs[cases.length]!);
  }, 300_000);

  it('each rank holds the model state estimate-memory predicts (within 10%), and sends what ZeRO says', async () => {
    const ws = tinyWorkspace();
    const config = resolveModelConfig('gpt-nano', { layers: 2, heads: 2, dModel: 32, vocabSize: 300, contextLength: 32 });
    const units = unitComputeCosts(config, 'host');
    const segments = segmentSpecs(config);
    const world = 4;
    const modelBytes = 4 * units[units.length - 1].end;
    const sent: number[] = [];
    for (const stage of [0, 1, 2, 3] as ZeroStage[]) {
      const run = fourWorkers.get(stage) ?? await trainRun(ws, `mem${stage}`, world, ['--zero', String(stage)]);
      const metrics = run.metrics as Record<string, number>[];
      const last = metrics.filter((m) => m.step === 4);
      expect(last.length).toBe(world);
      for (const m of last) {
        const predicted = estimateModelState(units, segments, stage, world, m.rank);
        const measured = m.model_state_bytes;
        expect(Math.abs(measured - predicted.total) / predicted.total, `stage ${stage} rank ${m.rank}: measured ${measured}, predicted ${predicted.total}`).toBeLessThanOrEqual(0.1);
        expect(m.optimizer_bytes).toBe(predicted.optimizer);
        expect(m.grads_bytes).toBeLessThanOrEqual(predicted.grads);
      }
      // Traffic of a training step without evaluation (the last step also evaluates).
      const plain = metrics.filter((m) => m.step === 3);
      sent.push(plain.reduce((s, m) => s + m.bytes_sent, 0) / world);
    }
    // Ring traffic per rank: 2(N-1)/N x model bytes for stages 0-2 (reduce-scatter + all-gather of
    // gradients or parameters; the tied embedding's gradient reduced once, when complete), 1.5x that
    // for stage 3 (parameters gathered for forward and again for backward). Headers and the small
    // reductions (loss, gradient norm) add a little.
    const ideal = (2 * (world - 1)) / world * modelBytes;
    sent.slice(0, 3).forEach((s, stage) => expect(s / ideal, `stage ${stage}`).toBeGreaterThanOrEqual(0.99));
    sent.slice(0, 3).forEach((s, stage) => expect(s / ideal, `stage ${stage}`).toBeLessThanOrEqual(1.05));
    expect(sent[3] / ideal).toBeGreaterThanOrEqual(1.45);
    expect(sent[3] / ideal).toBeLessThanOrEqual(1.6);
  }, 300_000);
});
