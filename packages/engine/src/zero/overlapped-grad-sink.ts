import type { Device, Precision } from '../device/device.js';
import type { SegmentedModel } from '../interfaces.js';
import { FullGradSink } from './grad-sinks.js';

/**
 * Stages 0-1 with communication overlapped with backward (PyTorch DDP's idea): a unit's gradient
 * is final once the step's last pass has added to it, so its reduction (all-reduce, or stage 1's
 * reduce-scatter) starts right then, while backward computes the units before it. Reductions are
 * issued in the order units finish, the same on every rank, and are the same collectives as
 * after backward: the sums are the same, bit for bit.
 *
 * One thread computes and communicates: a reduction in flight takes its next turn (a received
 * chunk reduced, the next one sent) only when the event loop runs, so after starting one the
 * sink yields to I/O once per finished unit. The wire time itself passes in the kernel's socket
 * buffers while backward computes.
 */
export class OverlappedGradSink<V> extends FullGradSink<V> {
  private passes = 0;
  private readonly seen: number[];
  private readonly pending = new Map<number, Promise<V>>();
  private reduced: (V | null)[];

  constructor(
    model: SegmentedModel,
    device: Device<V>,
    precision: Precision,
    /** The unit's whole-step gradient, consumed, to what this rank keeps of its sum over the group. */
    private readonly reduceUnit: (gradient: V) => Promise<V>,
  ) {
    super(model, device, precision);
    this.seen = model.units.map(() => 0);
    this.reduced = model.units.map(() => null);
  }

  /** The step runs `passes` backward passes (its micro-batches): a unit is final after that many. */
  beginStep(passes: number): void {
    this.passes = passes;
    this.seen.fill(0);
  }

  override async unitDone(u: number): Promise<void> {
    await super.unitDone(u); // 16-bit: this pass added into the unit's sum
    if (this.passes === 0 || ++this.seen[u] < this.passes) return;
    const reduction = this.reduceUnit(this.takeUnit(u));
    reduction.catch(() => undefined); // surfaces in flush
    this.pending.set(u, reduction);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Waits for the reductions in flight (the runner calls it after every micro-batch). */
  override async flush(): Promise<void> {
    for (const [u, reduction] of this.pending) {
      this.pending.delete(u);
      this.reduced[u] = await reduction;
    }
  }

  /**
   * After the step's last pass: waits for the reductions in flight, then reduces, in unit order,
   * what no last pass reached (every rank alike: the same model and schedule), or everything when
   * beginStep was not called.
   */
  async complete(): Promise<void> {
    await this.flush();
    for (const u of this.model.units.keys()) {
      if (this.reduced[u] === null) this.reduced[u] = await this.reduceUnit(this.takeUnit(u));
    }
    // 16-bit sums are the sink's own vectors (fp32 ones are the pooled buffers, counted by the device).
    if (this.precision !== 'fp32') this.peakSums = Math.max(this.peakSums, this.reduced.reduce((b, r) => b + (r === null ? 0 : this.device.bytes(r)), 0));
  }

  /** Every unit's reduced gradient (after complete). */
  override take(): V[] {
    const out = this.reduced.map((r, u) => {
      if (r === null) throw new Error(`internal: unit ${u} taken before it was reduced`);
      return r;
    });
    this.reduced = this.model.units.map(() => null);
    return out;
  }

  override reset(): void {
    for (const reduction of this.pending.values()) void reduction.then((v) => this.device.dispose(v), () => undefined);
    this.pending.clear();
    for (const r of this.reduced) if (r !== null) this.device.dispose(r);
    this.reduced = this.model.units.map(() => null);
    this.seen.fill(0);
    super.reset();
  }

  /** The unit's whole-step gradient in the run's precision, out of the sink. */
  private takeUnit(u: number): V {
    const buf = this.open.get(u);
    if (buf) {
      this.open.delete(u);
      return this.device.flatten(buf, this.precision); // fp32: the step's buffer itself
    }
    const sum = this.sums[u];
    this.sums[u] = null;
    const unit = this.model.units[u];
    return sum ?? this.device.zeros(unit.end - unit.start, this.precision);
  }
}
