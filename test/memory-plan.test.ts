import { afterEach, describe, expect, it } from 'vitest';
import { trainedRun } from './helpers/equivalence.js';
import { killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';
import { expectPeakAsPlanned, type PlannedLayout } from './helpers/planned-memory.js';

afterEach(() => killAllStarted());

/**
 * The memory planner against measurement: small runs of every layout (ZeRO 0-3, tensor and
 * pipeline parallel, activation checkpointing, bf16 and fp16, both kernel sets) on 2 workers, each rank's
 * peak backend bytes in a training step (the memory meter: distinct buffers, every allocation)
 * against `trainer estimate-memory`'s prediction for that rank's pipeline stage: within 10%.
 */
const JOB = ['--layers', '2', '--global-batch', '4', '--steps', '3', '--eval-batches', '0', '--sample-tokens', '0'];

/** The tf kernel set's other layouts (ZeRO 0-3, tp, pp, bf16, fp16) are checked on device-resident.test.ts's runs. */
const LAYOUTS: (PlannedLayout & { args: string[] })[] = [
  { label: 'tf activation checkpointing', args: ['--activation-checkpointing'], kernels: 'tf', activationCheckpointing: true, microBatch: 2, microBatches: 1 },
  { label: 'host ZeRO 0', args: ['--zero', '0'], kernels: 'host', zero: 0, microBatch: 2, microBatches: 1 },
  { label: 'host ZeRO 3', args: ['--zero', '3'], kernels: 'host', zero: 3, microBatch: 2, microBatches: 1 },
  { label: 'host tp 2', args: ['--tp', '2'], kernels: 'host', tp: 2, microBatch: 4, microBatches: 1 },
  { label: 'host pp 2', args: ['--pp', '2', '--micro-batches', '2'], kernels: 'host', pp: 2, microBatch: 2, microBatches: 2 },
  { label: 'host activation checkpointing', args: ['--activation-checkpointing'], kernels: 'host', activationCheckpointing: true, microBatch: 2, microBatches: 1 },
];

describe('memory planner (multi-process)', () => {
  it('predicts every layout\'s peak backend bytes per rank within 10% of the measured peak', async () => {
    const ws = tinyWorkspace();
    for (const l of LAYOUTS) {
      const run = await trainedRun(ws, l.label.replace(/[ ,]+/g, '-'), 2, [...JOB, '--kernels', l.kernels, ...l.args]);
      expectPeakAsPlanned(run.metrics, l);
    }
  }, 600_000);
});
