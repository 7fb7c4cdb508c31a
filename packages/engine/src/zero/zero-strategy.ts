import type { AdamWConfig } from '../adamw.js';
import type { Device, Precision } from '../device/device.js';
import { gradientBuckets } from '../gradient-sync.js';
import type { CollectiveGroup, Disposable, SegmentedModel } from '../interfaces.js';
import type { ParamSource } from '../segment-runner.js';
import { FullGradSink, ShardedGradSink, type StepGradients } from './grad-sinks.js';
import { OverlappedGradSink } from './overlapped-grad-sink.js';
import { GatheredParams, ResidentParams } from './param-sources.js';
import type { ZeroPartition } from './partition.js';
import { STAGES, type StagePlan, type ZeroStage } from './stage-plan.js';
import { roundedCopy, ZeroState, type StateReader } from './zero-state.js';

export interface ZeroStrategyOptions {
  precision: Precision;
  adamw: AdamWConfig;
  /** Stage 0: the largest all-reduce, in bytes of fp32 (PyTorch DDP's bucket; larger units go in several). */
  bucketBytes: number;
  /** Stages 0-1: reduce each unit while backward goes on (overlapped-grad-sink.ts). */
  overlap: boolean;
}

/** A stage's parts, built once: its parameter source, gradient sink and optimizer state, and its two phases. */
export class ZeroStrategy<V, P extends Disposable> {
  readonly plan: StagePlan;
  readonly state: ZeroState<V>;
  readonly params: ParamSource<P> & { dispose?(): void };
  readonly grads: StepGradients<V> & { beginStep?(passes: number): void };
  private readonly resident: ResidentParams<V, P> | null;
  /** Resolves once every unit reduction started so far has called all of its collectives (reduceUnit). */
  private callOrder: Promise<void> = Promise.resolve();
  private readonly gathered: GatheredParams<V, P> | null;

  constructor(
    readonly stage: ZeroStage,
    private readonly model: SegmentedModel<Disposable, P>,
    private readonly device: Device<V>,
    private readonly group: CollectiveGroup,
    partition: ZeroPartition,
    private readonly o: ZeroStrategyOptions,
  ) {
    this.plan = STAGES[stage];
    this.state = new ZeroState(model.units, partition, this.plan.optimizer === 'replicated', device, o.adamw, model.decayRanges);
    const codec = o.precision; // parameters and gradients travel in the run's precision
    this.resident = this.plan.params === 'resident' ? new ResidentParams(model, device) : null;
    this.gathered = this.plan.params === 'gathered' ? new GatheredParams(model, device, group, (u) => this.state.master(u), codec) : null;
    this.params = (this.resident ?? this.gathered)!;
    const overlapped = o.overlap && this.plan.grads === 'full' && group.size > 1; // stages 0-1 reducing during backward
    this.grads = this.plan.grads === 'sharded'
      ? new ShardedGradSink(model, device, group, this.state.ranges.map((r) => r.end - r.start), o.precision, codec)
      : overlapped ? new OverlappedGradSink(model, device, o.precision, (g) => this.reduceUnit(g))
        : new FullGradSink(model, device, o.precision);
  }

  /**
   * Loads the model (and the optimizer's moments, `withOptimizer`) unit by unit: a rank reads
   * only what it keeps, the full unit where compute keeps it resident, else its own piece.
   */
  async load(read: StateReader, withOptimizer: boolean): Promise<void> {
    await this.device.prepareWire(this.o.precision);
    for (const [u, unit] of this.model.units.entries()) {
      const r = this.state.ranges[u];
      let master: Float32Array;
      if (this.resident) {
        const full = await read('params', unit.start, unit.end);
        const compute = this.device.fromHost(roundedCopy(full, this.o.precision), 'fp32');
        this.resident.refresh(u, compute);
        this.device.dispose(compute);
        master = r.start === 0 && r.end === full.length ? full : full.slice(r.start, r.end);
      } else {
        master = await read('params', unit.start + r.start, unit.start + r.end);
      }
      const m = withOptimizer ? await read('m', unit.start + r.start, unit.start + r.end) : undefined;
      const v = withOptimizer ? await read('v', unit.start + r.start, unit.start + r.end) : undefined;
      this.state.setPiece(u, master, m, v);
    }
  }

  /**
   * Phase "reduce": after the last micro-batch, each unit's gradient summed over the group, as
   * far as this rank needs it: the whole unit (replicated optimizer) or its optimizer range.
   */
  async reduce(): Promise<V[]> {
    const { device, group } = this;
    const codec = this.o.precision;
    if (this.grads instanceof OverlappedGradSink) {
      await this.grads.complete();
      return this.grads.take();
    }
    if (this.plan.reduce === 'during-backward') {
      await this.grads.flush();
      return this.grads.take();
    }
    const grads = this.grads.take();
    if (this.plan.reduce === 'reduce-scatter') {
      const out: V[] = [];
      await windowed(grads.length, (u) => device.reduceScatter(grads[u], group, codec, this.o.precision), (u, r) => (out[u] = r));
      return out;
    }
    // Units within one bucket are all-reduced a few at a time; a larger unit bucket by bucket.
    const single = grads.map((g) => gradientBuckets(device.length(g), this.o.bucketBytes).length <= 1);
    const whole = grads.flatMap((_, u) => (single[u] ? [u] : []));
    await windowed(whole.length, (i) => device.allReduce(grads[whole[i]], group, codec), (i, r) => (grads[whole[i]] = r));
    for (const [u, g] of grads.entries()) {
      if (single[u]) continue;
      for (const b of gradientBuckets(device.length(g), this.o.bucketBytes)) grads[u] = await device.allReduceRange(grads[u], b.start, b.end, group, codec);
    }
    return grads;
  }

  /**
   * One unit's whole-step gradient reduced as this stage needs it (consumed): all-reduced, bucket
   * by bucket when larger than a bucket (stage 0), or reduce-scattered to this rank's piece (stage 1).
   * The same calls reduce() makes after backward.
   */
  private reduceUnit(g: V): Promise<V> {
    // Units are reduced concurrently, but a group's collectives must be called in one order on
    // every rank: a unit larger than a bucket calls its next bucket only when the last one is
    // back, so the next unit's calls wait until this unit has made all of its own.
    const before = this.callOrder;
    let called!: () => void;
    this.callOrder = new Promise((resolve) => (called = resolve));
    const run = async (): Promise<V> => {
      await before;
      const { device, group } = this;
      const codec = this.o.precision;
      const buckets = this.plan.reduce === 'reduce-scatter' ? [] : gradientBuckets(device.length(g), this.o.bucketBytes);
      try {
        if (buckets.length <= 1) {
          const reduced = this.plan.reduce === 'reduce-scatter' ? device.reduceScatter(g, group, codec, this.o.precision) : device.allReduce(g, group, codec);
          called();
          return await reduced;
        }
        for (const [i, b] of buckets.entries()) {
          const reduced = device.allReduceRange(g, b.start, b.end, group, codec);
          if (i === buckets.length - 1) called();
          g = await reduced;
        }
        return g;
      } finally {
        called(); // also when a call failed: the next units' calls fail on the group themselves
      }
    };
    return run();
  }

  /** Phase "redistribute": compute reads the updated masters (rounded to the run's precision). */
  async redistribute(): Promise<void> {
    const { device, resident } = this;
    if (!resident) return; // stage 3 gathers when a segment runs
    const units = this.model.units;
    if (this.plan.redistribute === 'round-master') {
      for (const u of units.keys()) {
        const master = this.state.master(u);
        if (this.o.precision === 'fp32') {
          resident.refresh(u, master);
        } else {
          const working = device.rounded(master, this.o.precision);
          resident.refresh(u, working);
          device.dispose(working);
        }
      }
      return;
    }
    await windowed(units.length, (u) => device.allGather(this.state.master(u), units[u].end - units[u].start, this.group, this.o.precision), (u, full) => {
      resident.refresh(u, full);
      device.dispose(full);
    });
  }

  /** Unit u's working parameters in full, on the host (a collective when the optimizer is partitioned). */
  async fullUnit(u: number): Promise<Float32Array> {
    const master = this.state.master(u);
    const full = this.plan.optimizer === 'replicated'
      ? this.device.rounded(master, this.o.precision)
      : await this.device.allGather(master, this.model.units[u].end - this.model.units[u].start, this.group, this.o.precision);
    try {
      return await this.device.toHost(full);
    } finally {
      this.device.dispose(full);
    }
  }

  /** Bytes of compute parameters: resident, or the most gathered at once (values waiting included). */
  get computeBytes(): number {
    return this.resident ? this.resident.residentBytes : this.gathered!.peakResidentBytes + this.gathered!.peakGatheredBytes;
  }

  dispose(): void {
    this.resident?.dispose();
    this.gathered?.finish();
    this.grads.reset();
    this.state.dispose();
  }
}

/** Collectives in flight at once over a stage's units: overlap without holding every unit's buffers. */
export const COLLECTIVES_IN_FLIGHT = 2;

/**
 * issue(0..count-1) with up to COLLECTIVES_IN_FLIGHT in flight, each result consumed in order.
 * The issue order is the same on every rank (a collective's order must be), whatever finishes first.
 */
async function windowed<T>(count: number, issue: (i: number) => Promise<T>, consume: (i: number, result: T) => void): Promise<void> {
  const inFlight: Promise<T>[] = [];
  let next = 0;
  for (let i = 0; i < count; i++) {
    while (next < count && next < i + COLLECTIVES_IN_FLIGHT) {
      const p = issue(next++);
      p.catch(() => undefined); // a failure surfaces where it is awaited, not as an unhandled rejection
      inFlight.push(p);
    }
    consume(i, await inFlight.shift()!);
  }
}
