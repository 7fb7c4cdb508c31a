import type { Disposable, LossResult, MicroBatch, SegmentedModel } from './interfaces.js';

/**
 * Runs one micro-batch through a segmented model: forward over every segment, then backward in
 * reverse, asking a ParamSource for each segment's parameters just before it runs and handing
 * each unit's gradient to a GradSink as soon as a segment has added to it. (A unit read by two
 * segments, the tied embedding, is handed over twice: a sink may reduce each part separately,
 * since reductions are linear, rather than keep its buffer alive across the whole backward.)
 * Whatever the ZeRO stage, this is the one place that walks the model.
 */
export interface ParamSource<P extends Disposable> {
  /** The parameters of `units`, for segment `seg` in this direction (may gather them). */
  acquire(units: readonly number[], direction: 'forward' | 'backward', seg: number): Promise<Map<number, P>>;
  /** The segment is done with them (a source may free or keep them). */
  release(params: Map<number, P>): void;
  /** The micro-batch is over: free anything kept. */
  finish(): void;
}

export interface GradSink {
  /** Buffers (unit length, flat layout relative to unit.start) that backward adds into. */
  buffers(units: readonly number[]): Map<number, Float32Array>;
  /**
   * A segment has added its gradient to `unit`: what the unit's buffer holds may be reduced now;
   * a later contribution (the tied embedding's second segment) starts a new buffer. The promise
   * resolves when the sink is ready for more (it may wait for older reductions, to bound the
   * gradient buffers alive at once), not necessarily when this reduction is done.
   */
  unitDone(unit: number): Promise<void>;
  /** Waits for every reduction started by unitDone. */
  flush(): Promise<void>;
}

export class SegmentRunner<A extends Disposable, P extends Disposable> {
  /** `sample` runs after every segment's forward and backward (e.g. to track peak backend memory). */
  constructor(readonly model: SegmentedModel<A, P>, private readonly sample: () => void = () => undefined) {}

  /** Forward and backward of one micro-batch; gradients scaled by gradScale go to the sink. */
  async forwardBackward(mb: MicroBatch, gradScale: number, params: ParamSource<P>, sink: GradSink): Promise<LossResult> {
    const segs = this.model.segments;
    const saved: { release(): void }[] = [];
    let x: A | null = null;
    let loss: LossResult | undefined;
    try {
      for (let s = 0; s < segs.length; s++) {
        const p = await params.acquire(segs[s].forwardUnits, 'forward', s);
        const r = this.model.forward(s, p, x, mb, true);
        params.release(p);
        x?.dispose();
        x = r.y;
        saved.push(r.saved);
        if (r.loss) loss = r.loss;
        this.sample();
      }
      let dy: A | null = null;
      for (let s = segs.length - 1; s >= 0; s--) {
        const p = await params.acquire(segs[s].backwardUnits, 'backward', s);
        const dx = this.model.backward(s, p, saved[s], dy, gradScale, sink.buffers(segs[s].gradUnits));
        params.release(p);
        dy?.dispose();
        dy = dx;
        this.sample();
        for (const u of segs[s].gradUnits) await sink.unitDone(u);
      }
      dy?.dispose();
      await sink.flush();
    } finally {
      x?.dispose();
      for (const sv of saved) sv.release(); // idempotent: frees what an exception left behind
      params.finish();
    }
    if (!loss) throw new Error('internal: the last segment returned no loss');
    return loss;
  }

  /** Loss only (evaluation): forward without saving anything. */
  async loss(mb: MicroBatch, params: ParamSource<P>): Promise<LossResult> {
    let x: A | null = null;
    let loss: LossResult | undefined;
    try {
      for (let s = 0; s < this.model.segments.length; s++) {
        const p = await params.acquire(this.model.segments[s].forwardUnits, 'forward', s);
        const r = this.model.forward(s, p, x, mb, false);
        params.release(p);
        r.saved.release();
        x?.dispose();
        x = r.y;
        if (r.loss) loss = r.loss;
      }
    } finally {
      x?.dispose();
      params.finish();
    }
    if (!loss) throw new Error('internal: the last segment returned no loss');
    return loss;
  }
}
