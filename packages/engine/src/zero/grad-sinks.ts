import type { Device, Precision } from '../device/device.js';
import type { CollectiveGroup, GradBuffer, SegmentedModel, WireCodec } from '../interfaces.js';
import type { GradSink } from '../segment-runner.js';

/**
 * Where backward's unit gradients go, on the rank's Device. Both sinks hand out a gradient
 * buffer per unit for a pass to add into, and at the end of the step `take()` gives one vector
 * per unit: the whole unit's gradient (FullGradSink) or this rank's piece of the sum over the
 * data-parallel group (ShardedGradSink).
 */
export interface StepGradients<V> extends GradSink {
  /** The step's gradient per unit (ownership passes to the caller); the sink starts afresh. */
  take(): V[];
  /** Frees whatever a failed step left. */
  reset(): void;
  /** Bytes of gradients held at most: buffers being filled or reduced, and the step's sums. */
  readonly heldBytes: number;
}

/**
 * What both sinks share: one gradient buffer per unit while passes add to it, the step's sums
 * per unit, and how much of both existed at most.
 */
abstract class UnitGradientSink<V> implements StepGradients<V> {
  protected readonly open = new Map<number, GradBuffer>();
  protected sums: (V | null)[];
  protected peakSums = 0;

  constructor(protected readonly model: SegmentedModel, protected readonly device: Device<V>, protected readonly precision: Precision) {
    this.sums = model.units.map(() => null);
  }

  buffers(units: readonly number[]): Map<number, GradBuffer> {
    return new Map(units.map((u) => {
      let buf = this.open.get(u);
      if (!buf) {
        const unit = this.model.units[u];
        buf = this.device.gradBuffer(unit.end - unit.start);
        this.open.set(u, buf);
      }
      return [u, buf] as const;
    }));
  }

  abstract unitDone(unit: number): Promise<void>;
  abstract flush(): Promise<void>;
  abstract take(): V[];

  reset(): void {
    for (const buf of this.open.values()) this.device.dropGradBuffer(buf);
    this.open.clear();
    for (const s of this.sums) if (s !== null) this.device.dispose(s);
    this.sums = this.model.units.map(() => null);
  }

  get heldBytes(): number {
    return this.device.gradBufferBytes + this.peakSums;
  }

  /** Starts the next step's sums; notes how much the last held. */
  protected takeSums(): (V | null)[] {
    this.peakSums = Math.max(this.peakSums, this.sums.reduce((b, s) => b + (s === null ? 0 : this.device.bytes(s)), 0));
    const sums = this.sums;
    this.sums = this.model.units.map(() => null);
    return sums;
  }
}

/**
 * Stages 0-1: every rank accumulates the full gradient over its micro-batches; it is reduced
 * after the last one. fp32: one buffer per unit for the whole step, every pass adds into it. A
 * 16-bit run holds the gradient in 16 bits: each pass fills an fp32 buffer, added (one rounding)
 * to the unit's 16-bit sum as soon as the unit is complete.
 */
export class FullGradSink<V> extends UnitGradientSink<V> {
  unitDone(u: number): Promise<void> {
    if (this.precision !== 'fp32') {
      const buf = this.open.get(u);
      if (buf) {
        this.open.delete(u);
        const pass = this.device.flatten(buf, 'fp32');
        const sum = this.sums[u];
        if (sum === null) {
          this.sums[u] = this.device.toPrecision(pass, this.precision); // the first pass, rounded once
        } else {
          this.sums[u] = this.device.add(sum, pass);
          this.device.dispose(pass);
        }
      }
    }
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  take(): V[] {
    const sums = this.takeSums();
    const out = this.model.units.map((unit, u) => {
      const buf = this.open.get(u);
      if (buf) return this.device.flatten(buf, this.precision); // fp32: the step's buffer itself
      return sums[u] ?? this.device.zeros(unit.end - unit.start, this.precision);
    });
    this.open.clear();
    return out;
  }
}

/**
 * Stages 2-3: a unit's gradient exists in full only while backward adds to it; then it is
 * reduce-scattered and this rank keeps (adds into its 16- or 32-bit sum) only its own piece. At
 * most `maxInFlight` reductions run at once (backward waits for the oldest before it goes on),
 * so the gradient never exists in full for the whole model: the buffers alive at once are the
 * unit being reduced and the unit being computed.
 */
export const DEFAULT_MAX_REDUCTIONS_IN_FLIGHT = 1;

export class ShardedGradSink<V> extends UnitGradientSink<V> {
  private pending: Promise<void>[] = [];

  constructor(
    model: SegmentedModel,
    device: Device<V>,
    private readonly group: CollectiveGroup,
    /** Each unit's piece length on this rank. */
    private readonly pieceLengths: readonly number[],
    precision: Precision,
    private readonly codec: WireCodec,
    private readonly maxInFlight = DEFAULT_MAX_REDUCTIONS_IN_FLIGHT,
  ) {
    super(model, device, precision);
  }

  async unitDone(u: number): Promise<void> {
    const buf = this.open.get(u);
    if (!buf) return;
    this.open.delete(u);
    const full = this.device.flatten(buf, 'fp32');
    this.pending.push(this.device.reduceScatter(full, this.group, this.codec, 'fp32').then((mine) => {
      const sum = this.sums[u];
      if (sum === null && this.precision === 'fp32') {
        this.sums[u] = mine;
        return;
      }
      // One rounding of (sum + mine) into the 16-bit sum.
      if (sum === null) {
        this.sums[u] = this.device.toPrecision(mine, this.precision);
        return;
      }
      this.sums[u] = this.device.add(sum, mine);
      this.device.dispose(mine);
    }));
    while (this.pending.length > this.maxInFlight) await this.pending.shift();
  }

  async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
  }

  take(): V[] {
    // Every unit's piece (zeros for one no pass reached), counted as held.
    this.sums = this.sums.map((s, u) => s ?? this.device.zeros(this.pieceLengths[u], this.precision));
    return this.takeSums() as V[];
  }
}
