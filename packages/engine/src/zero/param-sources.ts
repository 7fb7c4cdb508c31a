import type { CollectiveGroup, Disposable, SegmentedModel, WireCodec } from '../interfaces.js';
import type { VectorStore } from '../precision/vector-store.js';
import type { ParamSource } from '../segment-runner.js';
import type { ZeroPartition } from './partition.js';

/** Bytes of a unit's uploaded tensors, when the model says (TF.js tensors carry `size`). */
function tensorBytes(p: Disposable): number {
  const tensors = (p as { tensors?: { size: number }[] }).tensors;
  return tensors ? tensors.reduce((s, t) => s + 4 * t.size, 0) : 0;
}

/**
 * Stages 0-2: every unit's parameters stay uploaded between steps; refresh() re-uploads them
 * after the optimizer has changed the flat vector.
 */
export class ResidentParams<P extends Disposable> implements ParamSource<P> {
  private units: P[] = [];
  /** Bytes held by the uploaded tensors (the compute copy of the parameters). */
  residentBytes = 0;

  constructor(private readonly model: SegmentedModel<Disposable, P>) {}

  /** Uploads every unit from the (full) working parameters, in whatever precision they are held. */
  refresh(params: VectorStore): void {
    const next = this.model.units.map((u, i) => this.model.upload(i, params.read(u.start, u.end)));
    this.dispose();
    this.units = next;
    this.residentBytes = next.reduce((s, p) => s + tensorBytes(p), 0);
  }

  acquire(units: readonly number[]): Promise<Map<number, P>> {
    return Promise.resolve(new Map(units.map((u) => [u, this.units[u]] as const)));
  }

  release(): void {}

  finish(): void {}

  dispose(): void {
    for (const p of this.units) p.dispose();
    this.units = [];
    this.residentBytes = 0;
  }
}

/**
 * Stage 3: a unit's full parameters exist only while a segment that reads them runs. acquire()
 * all-gathers the unit from every rank's piece of it and uploads it; release() keeps it just long
 * enough for the next segment to reuse it (the head's forward and backward read the same units);
 * and while a segment computes, the next segment's gathers are already issued (prefetch).
 */
export class GatheredParams<P extends Disposable> implements ParamSource<P> {
  private kept = new Map<number, P>();
  private readonly pending = new Map<number, Promise<Float32Array>>();
  private current = 0;
  private gatheredLive = 0;
  /** Largest bytes of uploaded unit tensors held at once (the transient compute copy). */
  peakResidentBytes = 0;
  /** Largest bytes of gathered fp32 values held at once (received, not yet uploaded). */
  peakGatheredBytes = 0;

  constructor(
    private readonly model: SegmentedModel<Disposable, P>,
    private readonly group: CollectiveGroup,
    private readonly partition: ZeroPartition,
    /** This rank's parameter pieces, in shard space (the run's precision; the wire codec matches). */
    private readonly shardParams: VectorStore,
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
      const p = this.model.upload(u, values);
      this.gatheredLive -= values.byteLength;
      this.current += tensorBytes(p);
      out.set(u, p);
    }
    // Peak before freeing: the previous segment's units are still alive while these upload.
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

  private gather(u: number): Promise<Float32Array> {
    const unit = this.model.units[u];
    const piece = this.partition.pieces[u];
    const mine = this.shardParams.read(piece.shardOffset, piece.shardOffset + piece.flatEnd - piece.flatStart);
    return this.group.allGather(mine, unit.end - unit.start, { codec: this.codec }).then((values) => {
      this.gatheredLive += values.byteLength;
      this.peakGatheredBytes = Math.max(this.peakGatheredBytes, this.gatheredLive);
      return values;
    });
  }
}
