import { afterEach, describe, expect, it } from 'vitest';
import type { Workspace } from './helpers/checkpoint-run.js';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { inParallel, killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';
import { expectPeakAsPlanned, type PlannedLayout } from './helpers/planned-memory.js';

afterEach(() => killAllStarted());

/**
 * The device-resident engine, multi-process: with the tf kernel set (the CUDA and WebGPU path;
 * here on wasm standing in for a GPU) parameters, gradients and optimizer state live on the
 * backend, so in every layout a rank's host<->device bytes per step stay within what its
 * collectives carry (sent + received) plus the step's token ids and 1 KiB of scalars, its
 * tf.memory().numTensors stays flat over 50 steps, 2 workers follow 1 worker's trajectory, and
 * each rank's peak backend bytes are what the memory planner predicts (within 10%).
 */
const STEPS = 50;
const JOB = ['--kernels', 'tf', '--layers', '2', '--global-batch', '4', '--steps', String(STEPS), '--eval-every', '0', '--sample-tokens', '0'];
const SEQ = 32; // the tiny job's context length
const SCALARS = 1024;
// 50 steps: Adam turns the reordering of fp32 sums into ~2e-5 on a few near-zero-gradient
// parameters (data-parallel-equivalence.test.ts explains); measured 2.0-2.5e-5 here.
const TOLERANCE = { lossRtol: 2e-5, paramAtol: 5e-5 };
// 16 bits: 2 workers round partial sums on the wire where 1 worker rounds its sum once (bf16
// keeps 8 significant bits: 4e-3 relative per rounding).
const TOLERANCE_16 = { lossRtol: 1e-2, paramAtol: 2e-2 };

const run = (ws: Workspace, name: string, nodes: number, extra: string[]) => trainedRun(ws, name, nodes, [...JOB, ...extra]);

describe('device-resident state (tf kernels, multi-process)', () => {
  it('ZeRO 0-3, tensor and pipeline parallel, bf16 and fp16: host<->device bytes within the collectives\' bytes + token ids, tensors flat, 1-worker trajectory', async () => {
    const ws = tinyWorkspace();
    const refs = new Map<string, Awaited<ReturnType<typeof run>>>();
    // Each also checks the memory planner's prediction of its peak (memory-plan.test.ts has the rest).
    const layouts: [string, string[], PlannedLayout][] = [
      ['ZeRO 0', ['--zero', '0'], { label: 'tf ZeRO 0', kernels: 'tf', zero: 0, microBatch: 2, microBatches: 1 }],
      ['ZeRO 1', ['--zero', '1'], { label: 'tf ZeRO 1', kernels: 'tf', zero: 1, microBatch: 2, microBatches: 1 }],
      ['ZeRO 2', ['--zero', '2'], { label: 'tf ZeRO 2', kernels: 'tf', zero: 2, microBatch: 2, microBatches: 1 }],
      ['ZeRO 3', ['--zero', '3', '--micro-batch', '1'], { label: 'tf ZeRO 3, 2 micro-batches', kernels: 'tf', zero: 3, microBatch: 1, microBatches: 2 }],
      ['tp 2', ['--tp', '2'], { label: 'tf tp 2', kernels: 'tf', tp: 2, microBatch: 4, microBatches: 1 }],
      ['pp 2', ['--pp', '2', '--micro-batches', '2'], { label: 'tf pp 2', kernels: 'tf', pp: 2, microBatch: 2, microBatches: 2 }],
      // 16 bits: values cross the boundary as their wire codes, 2 bytes each way
      ['bf16 ZeRO 0', ['--zero', '0', '--precision', 'bf16'], { label: 'tf bf16', kernels: 'tf', precision: 'bf16', microBatch: 2, microBatches: 1 }],
      ['bf16 ZeRO 2', ['--zero', '2', '--precision', 'bf16'], { label: 'tf bf16 ZeRO 2', kernels: 'tf', precision: 'bf16', zero: 2, microBatch: 2, microBatches: 1 }],
      ['fp16 ZeRO 3', ['--zero', '3', '--precision', 'fp16'], { label: 'tf fp16 ZeRO 3', kernels: 'tf', precision: 'fp16', zero: 3, microBatch: 2, microBatches: 1 }],
    ];
    const precisionOf = (extra: string[]) => extra.includes('--precision') ? extra[extra.indexOf('--precision') + 1] : 'fp32';
    // The runs are independent (each its own folder): the 1-worker references and the layouts run a few at a time.
    const precisions = [...new Set(layouts.map(([, extra]) => precisionOf(extra)))];
    const runs = await inParallel([
      ...precisions.map((precision) => () => run(ws, `ref-${precision}`, 1, precision === 'fp32' ? [] : ['--precision', precision])),
      ...layouts.map(([label, extra]) => () => run(ws, label.replace(/ /g, '-'), 2, extra)),
    ], 3);
    precisions.forEach((precision, i) => refs.set(precision, runs[i]!));
    for (const [i, [label, extra, planned]] of layouts.entries()) {
      const precision = precisionOf(extra);
      const r = runs[precisions.length + i]!;
      expectSameTrajectory(r, refs.get(precision)!, label, precision === 'fp32' ? TOLERANCE : TOLERANCE_16);
      expectPeakAsPlanned(r.metrics, planned);
      const dp = extra.includes('--tp') || extra.includes('--pp') ? 1 : 2;
      const tokenIds = 2 * 4 * (4 / dp) * SEQ; // int32 tokens and targets of this rank's share of the global batch
      for (const rank of [0, 1]) {
        const rows = r.metrics.filter((m) => m.rank === rank && typeof m.host_to_device_bytes === 'number') as Record<string, number>[];
        expect(rows.length, `${label} rank ${rank}`).toBe(STEPS);
        // Per step, averaged over the steps after the first (a peer that runs ahead delivers some
        // of its next step's bytes before this rank's step starts: received bytes are attributed
        // to steps only up to a message; the device's bytes are counted exactly).
        const timed = rows.filter((x) => x.step >= 1);
        const mean = (f: (m: Record<string, number>) => number) => timed.reduce((s, m) => s + f(m), 0) / timed.length;
        const crossed = mean((m) => m.host_to_device_bytes + m.device_to_host_bytes);
        const carried = mean((m) => m.comm_bytes);
        expect(crossed, `${label} rank ${rank}: ${crossed} bytes crossed per step, the network carried ${carried}`).toBeLessThanOrEqual(carried + tokenIds + SCALARS);
        expect(carried).toBeGreaterThan(0);
        // No synchronous read anywhere on a step's path (on WebGPU in Node one would throw).
        expect(rows.filter((x) => x.sync_reads !== 0).map((x) => `step ${x.step}: ${x.sync_reads}`), `${label} rank ${rank}`).toEqual([]);
        // No tensor leaks: after the first steps (kernels' cached constants) the count stays put.
        const counts = rows.filter((x) => x.step >= 2).map((x) => x.num_tensors);
        expect(Math.max(...counts) - Math.min(...counts), `${label} rank ${rank}: tensors ${counts.join(',')}`).toBe(0);
      }
    }
  }, 600_000);
});
