import type { Disposable, GradBuffer, MicroBatch, PendingLoss, SavedState, SegmentedModel } from './interfaces.js';

/**
 * Runs micro-batches through a segmented model: forward over every segment, then backward in
 * reverse, asking a ParamSource for each segment's parameters just before it runs and handing
 * each unit's gradient to a GradSink as soon as it is complete. (A unit two segments write, the
 * tied embedding, is handed over once, after the second: one reduction of it per step instead
 * of two, for keeping its buffer across the backward in between, as DeepSpeed keeps its .grad.)
 * Whatever the ZeRO stage or pipeline schedule, this is the one place that walks the model.
 *
 * forward() and backward() are separate so a pipeline schedule can interleave the micro-batches
 * of a stage (1F1B); forwardBackward() is both for one micro-batch.
 */
export interface ParamSource<P extends Disposable> {
  /** The parameters of `units`, for segment `seg` in this direction (may gather them). */
  acquire(units: readonly number[], direction: 'forward' | 'backward', seg: number): Promise<Map<number, P>>;
  /** The segment is done with them (a source may free or keep them). */
  release(params: Map<number, P>): void;
  /** A forward or backward pass is over: free anything kept. */
  finish(): void;
}

export interface GradSink {
  /** Buffers (one per unit, flat layout relative to unit.start) that backward adds into. */
  buffers(units: readonly number[]): Map<number, GradBuffer>;
  /**
   * Backward has added the last contribution of this pass to `unit`'s gradient (a unit several
   * segments write, the tied embedding, is done after the last of them: completedUnits): what
   * its buffer holds may be reduced now. The promise resolves when the sink is ready for more (it
   * may wait for older reductions, to bound the gradient buffers alive at once), not necessarily
   * when this reduction is done.
   */
  unitDone(unit: number): Promise<void>;
  /** Waits for every reduction started by unitDone. */
  flush(): Promise<void>;
}

/** A micro-batch's forward pass, waiting for its backward. */
export interface ForwardPass<A> {
  /** Output activation of the last segment (null when the last segment computes the loss). */
  output: A | null;
  /** The loss, when this model's last segment computes it (read later: no device stall). */
  loss: PendingLoss | undefined;
  /** Per segment: its saved state, or null when it will be recomputed from `inputs`. */
  saved: (SavedState | null)[];
  /** Per checkpointed segment: the input activation kept to recompute it. */
  inputs: (A | null)[];
  /** The activation the pass started from (owned by the caller). */
  input: A | null;
  mb: MicroBatch;
}

export interface SegmentRunnerOptions {
  /**
   * Activation checkpointing: recomputable segments (blocks) keep only their input in forward
   * and run their forward again, saving this time, just before their backward. The same
   * arithmetic in the same order: results are identical, memory lower, one more forward.
   */
  checkpointActivations?: boolean;
}

/**
 * For each segment, the gradient units whose gradient is complete once its backward has run:
 * backward visits segments in reverse, so a unit several segments write (the tied embedding: the
 * output head and the token embedding) is complete after the one with the lowest index. Reducing
 * it once, there, instead of after each contribution, saves a reduction of the whole unit per
 * step, at the cost of keeping its buffer from its first contribution to its last.
 */
export function completedUnits(segments: readonly { gradUnits: readonly number[] }[]): number[][] {
  const last = new Map<number, number>();
  segments.forEach((seg, s) => seg.gradUnits.forEach((u) => { if (!last.has(u)) last.set(u, s); }));
  return segments.map((seg, s) => seg.gradUnits.filter((u) => last.get(u) === s));
}

export class SegmentRunner<A extends Disposable, P extends Disposable> {
  private readonly checkpoint: boolean;
  private readonly completed: number[][];

  constructor(readonly model: SegmentedModel<A, P>, options: SegmentRunnerOptions = {}) {
    this.checkpoint = options.checkpointActivations ?? false;
    this.completed = completedUnits(model.segments);
  }

  /**
   * Forward of every segment. `input` is the activation entering the first segment (null when it
   * reads the tokens); it is not disposed. With train = false nothing is saved.
   */
  async forward(mb: MicroBatch, input: A | null, params: ParamSource<P>, train = true): Promise<ForwardPass<A>> {
    const segs = this.model.segments;
    // An evaluation pass leaves out the micro-batch's origin: it keys training-only randomness (LoRA dropout).
    const evaluation: MicroBatch = train || !mb.origin ? mb : { tokens: mb.tokens, targets: mb.targets, batch: mb.batch, ...(mb.segments ? { segments: mb.segments } : {}) };
    const saved: (SavedState | null)[] = [];
    const inputs: (A | null)[] = [];
    let x: A | null = input;
    let loss: PendingLoss | undefined;
    const dropInput = (v: A | null) => {
      if (v !== input && !inputs.includes(v)) v?.dispose();
    };
    try {
      for (let s = 0; s < segs.length; s++) {
        const recompute = train && this.checkpoint && segs[s].recomputable === true;
        const p = await params.acquire(segs[s].forwardUnits, 'forward', s);
        const r = await this.model.forward(s, p, x, train ? mb : evaluation, train && !recompute);
        params.release(p);
        if (recompute) {
          r.saved.release();
          inputs[s] = x; // kept to run this segment again in backward
          saved.push(null);
        } else {
          dropInput(x);
          inputs[s] = null;
          if (train) saved.push(r.saved);
          else r.saved.release();
        }
        x = r.y;
        if (r.loss) loss = r.loss;
      }
      // A training pass keeps the last segment's parameters: its backward, usually next, reads them.
      if (!train) params.finish();
      return { output: x, loss, saved, inputs, input, mb };
    } catch (err) {
      dropInput(x);
      for (const v of inputs) if (v !== input) v?.dispose();
      for (const sv of saved) sv?.release();
      params.finish();
      throw err;
    }
  }

  /**
   * Backward of every segment, in reverse, consuming the pass. `dOutput` is the gradient of the
   * pass's output (null when the last segment computed the loss: gradScale scales d(loss)); it is
   * not disposed. Returns the gradient of the pass's input (null when the input was the tokens).
   */
  async backward(pass: ForwardPass<A>, dOutput: A | null, gradScale: number, params: ParamSource<P>, sink: GradSink): Promise<A | null> {
    const segs = this.model.segments;
    let dy: A | null = dOutput;
    try {
      for (let s = segs.length - 1; s >= 0; s--) {
        const recompute = pass.saved[s] === null;
        const units = recompute ? [...new Set([...segs[s].forwardUnits, ...segs[s].backwardUnits])] : segs[s].backwardUnits;
        const p = await params.acquire(units, 'backward', s);
        if (recompute) {
          const r = await this.model.forward(s, p, pass.inputs[s], pass.mb, true);
          r.y?.dispose();
          pass.saved[s] = r.saved;
          if (pass.inputs[s] !== pass.input) pass.inputs[s]?.dispose();
          pass.inputs[s] = null;
        }
        const dx = await this.model.backward(s, p, pass.saved[s]!, dy, gradScale, sink.buffers(segs[s].gradUnits));
        params.release(p);
        if (dy !== dOutput) dy?.dispose();
        dy = dx;
        for (const u of this.completed[s]) await sink.unitDone(u);
      }
      return dy;
    } catch (err) {
      if (dy !== dOutput) dy?.dispose();
      throw err;
    } finally {
      pass.output?.dispose();
      for (const sv of pass.saved) sv?.release(); // idempotent: frees what an exception left behind
      for (const v of pass.inputs) if (v !== pass.input) v?.dispose();
      params.finish();
    }
  }

  /** Forward and backward of one micro-batch on a model that computes its own loss. */
  async forwardBackward(mb: MicroBatch, gradScale: number, params: ParamSource<P>, sink: GradSink): Promise<PendingLoss> {
    const pass = await this.forward(mb, null, params);
    const loss = pass.loss;
    (await this.backward(pass, null, gradScale, params, sink))?.dispose();
    await sink.flush();
    if (!loss) throw new Error('internal: the last segment returned no loss');
    return loss;
  }

  /** Loss only (evaluation): forward without saving anything. */
  async loss(mb: MicroBatch, params: ParamSource<P>): Promise<PendingLoss> {
    const pass = await this.forward(mb, null, params, false);
    pass.output?.dispose();
    if (!pass.loss) throw new Error('internal: the last segment returned no loss');
    return pass.loss;
  }
}
