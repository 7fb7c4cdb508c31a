import type { Disposable, MicroBatch, PendingLoss } from '../interfaces.js';
import type { ForwardPass, GradSink, ParamSource, SegmentRunner } from '../segment-runner.js';
import { lossSum, type MicroBatchSchedule, type ScheduleResult } from './micro-batch-schedule.js';
import { schedule1F1B } from './schedule-1f1b.js';

/**
 * One pipeline stage's part of a step, by the 1F1B schedule (schedule-1f1b.ts): activations
 * arrive from the previous stage and leave for the next; gradients travel back. Point-to-point
 * verbs, composed as Megatron names them:
 *
 *   recvForward   activation of micro-batch m from stage s-1   (before forward m, s > 0)
 *   sendForward   activation of m to stage s+1                 (after forward m, s < P-1)
 *   recvBackward  gradient of m's activation from stage s+1    (before backward m, s < P-1)
 *   sendBackward  gradient of m's input to stage s-1           (after backward m, s > 0)
 *
 * Sends never wait (their promises are collected and awaited at the end), so the only waits are
 * receives: their total is this stage's idle time, the measured pipeline bubble.
 */
export interface PointToPoint {
  send(buf: Float32Array, dst: number, opts?: { tag?: number }): Promise<void>;
  recv(into: Float32Array, src: number, opts?: { tag?: number }): Promise<void>;
}

/** How activations cross a process boundary (the model knows their shape and backend). */
export interface ActivationIO<A> {
  /** Elements of the activation entering or leaving a stage for this micro-batch. */
  size(mb: MicroBatch): number;
  /** The activation's values on the host (an awaited device read). */
  toHost(a: A): Promise<Float32Array>;
  fromHost(values: Float32Array, mb: MicroBatch): A;
}

export interface PipelineStage<A> {
  stages: number;
  stage: number;
  /** The pipeline group: group rank = stage. */
  group: PointToPoint;
  io: ActivationIO<A>;
}

const FORWARD_TAG = 1;
const BACKWARD_TAG = 2;

export class OneFOneBSchedule<A extends Disposable> implements MicroBatchSchedule {
  constructor(readonly stage: PipelineStage<A>) {}

  async train<X extends Disposable, P extends Disposable>(
    runnerX: SegmentRunner<X, P>, microBatches: readonly MicroBatch[], scales: readonly number[], params: ParamSource<P>, sink: GradSink,
  ): Promise<ScheduleResult> {
    const runner = runnerX as unknown as SegmentRunner<A, P>;
    const { stages, stage: s, group, io } = this.stage;
    const first = s === 0;
    const last = s === stages - 1;
    const started = performance.now();
    let idleMs = 0;
    const receive = async (mb: MicroBatch, from: number, tag: number): Promise<A> => {
      const values = new Float32Array(io.size(mb));
      const t = performance.now();
      await group.recv(values, from, { tag });
      idleMs += performance.now() - t;
      return io.fromHost(values, mb);
    };
    // The device read starts at once; the sends to a neighbour leave in issue order (chained per tag).
    const chains = new Map<number, Promise<void>>();
    const send = (a: A, to: number, tag: number): Promise<void> => {
      const values = io.toHost(a).finally(() => a.dispose());
      const sent = (chains.get(tag) ?? Promise.resolve()).then(async () => group.send(await values, to, { tag }));
      chains.set(tag, sent);
      return sent;
    };
    const sends: Promise<void>[] = [];
    const losses: PendingLoss[] = [];
    const passes = new Map<number, { pass: ForwardPass<A>; input: A | null }>();
    try {
      for (const action of schedule1F1B(stages, s, microBatches.length)) {
        const mb = microBatches[action.micro];
        if (action.kind === 'forward') {
          const input = first ? null : await receive(mb, s - 1, FORWARD_TAG); // recvForward
          const pass = await runner.forward(mb, input, params);
          if (!last) {
            sends.push(send(pass.output!, s + 1, FORWARD_TAG)); // sendForward
            pass.output = null;
          } else if (pass.loss) {
            losses.push(pass.loss);
          }
          passes.set(action.micro, { pass, input });
        } else {
          const held = passes.get(action.micro)!;
          passes.delete(action.micro);
          const dOutput = last ? null : await receive(mb, s + 1, BACKWARD_TAG); // recvBackward
          const dInput = await runner.backward(held.pass, dOutput, scales[action.micro], params, sink);
          dOutput?.dispose();
          held.input?.dispose();
          if (!first && dInput) sends.push(send(dInput, s - 1, BACKWARD_TAG)); // sendBackward
          else dInput?.dispose();
        }
      }
      await Promise.all(sends);
      await sink.flush();
    } finally {
      for (const { pass, input } of passes.values()) {
        pass.output?.dispose();
        for (const sv of pass.saved) sv?.release();
        for (const v of pass.inputs) if (v !== input) v?.dispose();
        input?.dispose();
      }
    }
    return { lossSum: (await lossSum(losses)).lossSum, idleMs, wallMs: performance.now() - started };
  }

  /** Forward only (evaluation): every batch flows through the stages; the last computes the loss. */
  async evaluate<X extends Disposable, P extends Disposable>(runnerX: SegmentRunner<X, P>, batches: readonly MicroBatch[], params: ParamSource<P>): Promise<{ lossSum: number; count: number }> {
    const runner = runnerX as unknown as SegmentRunner<A, P>;
    const { stages, stage: s, group, io } = this.stage;
    const losses: PendingLoss[] = [];
    const sends: Promise<void>[] = [];
    for (const mb of batches) {
      let input: A | null = null;
      if (s > 0) {
        const values = new Float32Array(io.size(mb));
        await group.recv(values, s - 1, { tag: FORWARD_TAG });
        input = io.fromHost(values, mb);
      }
      const pass = await runner.forward(mb, input, params, false);
      input?.dispose();
      if (s < stages - 1) sends.push(group.send(await io.toHost(pass.output!), s + 1, { tag: FORWARD_TAG }));
      else if (pass.loss) losses.push(pass.loss);
      pass.output?.dispose();
    }
    await Promise.all(sends);
    return lossSum(losses);
  }
}
