import type { Disposable, MicroBatch, PendingLoss } from '../interfaces.js';
import type { GradSink, ParamSource, SegmentRunner } from '../segment-runner.js';

/**
 * The order in which a rank runs its micro-batches' forward and backward passes within a step:
 * one after another (SequentialSchedule), or, on a pipeline stage, the 1F1B schedule that
 * interleaves them with the neighbouring stages (one-f-one-b.ts). The trainer is given one and
 * calls it once per step; the schedule knows nothing of ZeRO, the trainer nothing of pipelines.
 */
export interface MicroBatchSchedule {
  /**
   * Forward and backward of every micro-batch, gradients into `sink` (flushed when this returns);
   * scales[m] weights micro-batch m's loss gradient. Returns the sum over micro-batches of loss x
   * counted targets (0 on a rank that computes no loss) and the time spent waiting for peers.
   */
  train<A extends Disposable, P extends Disposable>(
    runner: SegmentRunner<A, P>, microBatches: readonly MicroBatch[], scales: readonly number[], params: ParamSource<P>, sink: GradSink,
  ): Promise<ScheduleResult>;
  /** Forward only (evaluation): the loss sum and counted targets this rank computed. */
  evaluate<A extends Disposable, P extends Disposable>(runner: SegmentRunner<A, P>, batches: readonly MicroBatch[], params: ParamSource<P>): Promise<{ lossSum: number; count: number }>;
}

export interface ScheduleResult {
  lossSum: number;
  /** Milliseconds spent waiting for another rank (the pipeline bubble), and for the whole schedule. */
  idleMs: number;
  wallMs: number;
}

/** Sum of loss x count over pending losses, read once the passes are queued (no stall in between). */
export async function lossSum(losses: readonly PendingLoss[]): Promise<{ lossSum: number; count: number }> {
  let sum = 0;
  let count = 0;
  for (const l of losses) {
    if (l.count === 0) continue;
    sum += (await l.loss) * l.count;
    count += l.count;
  }
  return { lossSum: sum, count };
}

/** Data and tensor parallelism without pipeline stages: each micro-batch's forward, then its backward. */
export class SequentialSchedule implements MicroBatchSchedule {
  async train<A extends Disposable, P extends Disposable>(
    runner: SegmentRunner<A, P>, microBatches: readonly MicroBatch[], scales: readonly number[], params: ParamSource<P>, sink: GradSink,
  ): Promise<ScheduleResult> {
    const started = performance.now();
    const losses: PendingLoss[] = [];
    // A micro-batch with nothing counted still runs: under ZeRO-3 every rank must gather alike.
    for (const [m, mb] of microBatches.entries()) losses.push(await runner.forwardBackward(mb, scales[m], params, sink));
    return { lossSum: (await lossSum(losses)).lossSum, idleMs: 0, wallMs: performance.now() - started };
  }

  async evaluate<A extends Disposable, P extends Disposable>(runner: SegmentRunner<A, P>, batches: readonly MicroBatch[], params: ParamSource<P>): Promise<{ lossSum: number; count: number }> {
    const losses: PendingLoss[] = [];
    for (const b of batches) losses.push(await runner.loss(b, params));
    return lossSum(losses);
  }
}
