import type { Device } from '../device/device.js';
import type { CollectiveGroup, Disposable, SegmentedModel, WireCodec } from '../interfaces.js';
import type { ParamSource } from '../segment-runner.js';

/** Bytes of a unit's compute tensors, when the model says (TF.js tensors carry `size`). */
function tensorBytes(p: Disposable): number {
  const tensors = (p as { tensors?: { size: number }[] }).tensors;
  return tensors ? tensors.reduce((s, t) => s + 4 * t.size, 0) : 0;
}

/**
 * Stages 0-2: every unit's compute parameters stay on the backend between steps; `refresh`
 * replaces a unit's after the optimizer changed it (from full unit values on the device:
 * TfDevice splits the flat tensor into the parameters' tensors without leaving the device).
 */
export class ResidentParams<V, P extends Disposable> implements ParamSource<P> {
  private readonly units: (P | null)[];
  /** Bytes held by the compute tensors. */
  residentBytes = 0;

  constructor(private readonly model: SegmentedModel<Disposable, P>, private readonly device: Device<V>) {
    this.units = model.units.map(() => null);
  }

  /** Unit u now computes with `values` (its full flat values; not consumed). */
  refresh(u: number, values: V): void {
    const next = this.model.unitParams(u, this.device.computeValues(values));
    const old = this.units[u];
    if (old) {
      this.residentBytes -= tensorBytes(old);
      old.dispose();
    }
    this.units[u] = next;
    this.residentBytes += tensorBytes(next);
  }

  acquire(units: readonly number[]): Promise<Map<number, P>> {
    return Promise.resolve(new Map(units.map((u) => {
      const p = this.units[u];
      if (!p) throw new Error(`internal: unit ${u} has no parameters yet`);
      return [u, p] as const;
    })));
  }

  release(): void {}

  finish(): void {}

  dispose(): void {
    for (const p of this.units) p?.dispose();
    this.units.fill(null);
    this.residentBytes = 0;
  }
}

/**
 * Stage 3: a unit's full parameters exist only while a segment that reads them runs. acquire()
 * all-gathers the unit from every rank's piece of it and builds its compute parameters;
 * release() keeps them just long enough for the next segment to reuse them (the head's forward
 * and backward read the same units); and while a segment computes, the next segment's gathers
 * are already issued (prefetch).
 */
export class GatheredParams<V, P extends Disposable> implements ParamSource<P> {
  private kept = new Map<number, P>();
  private readonly pending = new Map<number, Promise<V>>();
  private current = 0;
  private gatheredLive = 0;
  /** Largest bytes of unit compute tensors held at once (the transient compute copy). */
  peakResidentBytes = 0;
  /** Largest bytes of gathered values held at once (received, not yet turned into compute parameters). */
  peakGatheredBytes = 0;

  constructor(
    private readonly model: SegmentedModel<Disposable, P>,
    private readonly device: Device<V>,
    private readonly group: CollectiveGroup,
    /** This rank's piece of a unit's parameters, as its master holds them (sent in `codec`: rounded to the run's precision on the wire). */
    private readonly ownPiece: (u: number) => V,
    private readonly codec: WireCodec,
  ) {}

  async acquire(units: readonly number[], direction: 'forward' | 'backward', seg: number): Promise<Map<number, P>> {
    const out = new Map<number, P>();
    for (const u of units) {
      const reuse = this.kept.get(u);
      if (reuse) {
        out.set(u, reuse);
        this.kept.delete(u);
        continue;
      }
      const values = await (this.pending.get(u) ?? this.gather(u));
      this.pending.delete(u);
      const p = this.model.unitParams(u, this.device.computeValues(values));
      this.gatheredLive -= this.device.bytes(values);
      this.device.dispose(values);
      this.current += tensorBytes(p);
      out.set(u, p);
    }
    // Peak before freeing: the previous segment's units are still alive while these are built.
    this.peakResidentBytes = Math.max(this.peakResidentBytes, this.current);
    this.dropKept();
    // Prefetch: issue the next segment's gathers now, in the same order on every rank.
    const segs = this.model.segments;
    const next = direction === 'forward' ? seg + 1 : seg - 1;
    if (next >= 0 && next < segs.length) {
      for (const u of direction === 'forward' ? segs[next].forwardUnits : segs[next].backwardUnits) {
        if (!out.has(u) && !this.pending.has(u)) this.pending.set(u, this.gather(u));
      }
    }
    return out;
  }

  release(params: Map<number, P>): void {
    for (const [u, p] of params) this.kept.set(u, p);
  }

  finish(): void {
    this.dropKept();
  }

  private dropKept(): void {
    for (const p of this.kept.values()) {
      this.current -= tensorBytes(p);
      p.dispose();
    }
    this.kept.clear();
  }

  private gather(u: number): Promise<V> {
    const unit = this.model.units[u];
    return this.device.allGather(this.ownPiece(u), unit.end - unit.start, this.group, this.codec).then((values) => {
      this.gatheredLive += this.device.bytes(values);
      this.peakGatheredBytes = Math.max(this.peakGatheredBytes, this.gatheredLive);
      return values;
    });
  }
}
