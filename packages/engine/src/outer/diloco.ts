import type { Device, OuterPieceState } from '../device/device.js';
import type { ReduceGroup, WireCodec } from '../interfaces.js';
import type { ExportLocation, OuterStateReader, ZeroState } from '../zero/zero-state.js';

/** DiLoCo's settings: sync every `every` inner steps over `group` (one rank per replica). */
export interface DiLoCoOptions {
  /** The ranks holding the same part of the model in every replica (same inner data-parallel rank, tp and pp). */
  group: ReduceGroup;
  /** Inner (AdamW) steps between syncs: H. */
  every: number;
  /** Outer learning rate (DiLoCo: 0.7). */
  lr: number;
  /** Outer Nesterov momentum (DiLoCo: 0.9). */
  momentum: number;
  /** How pseudo-gradients travel: fp32, or bf16 (half the bytes). */
  codec: WireCodec;
  /**
   * Overlap each sync's all-reduce with the next `overlap` inner steps (1..every - 1; see
   * DiLoCo's doc): its average lands that many steps later. Absent: every sync waits for its all-reduce.
   */
  overlap?: number;
}

/** One unit's outer state: the shared parameters (anchor), the outer momentum, and where this replica's progress is measured from. */
interface OuterPiece<V> extends OuterPieceState<V> {
  /** The local parameters right after the last sync (the anchor itself when not overlapping). */
  base: V;
}

/** The outer state over one exported piece, as a checkpoint holds it (fp32). */
export interface OuterPieceArrays {
  outer_anchor?: Float32Array;
  outer_momentum?: Float32Array;
  /** Only with overlap: where the replica's progress is measured from. */
  outer_base?: Float32Array;
  /** Only with overlap, between a sync and its landing: the sum of the pseudo-gradients, unapplied. */
  outer_pending?: Float32Array;
}

/**
 * Low-communication data parallelism (DiLoCo, Douillard et al. 2023): R replicas of the model
 * (each one data-parallel group, ZeRO inside it) train independently for H steps with their own
 * AdamW; then every replica's pseudo-gradient, the change since the last sync, is averaged over
 * the replicas and an outer SGD step with Nesterov momentum moves the shared parameters:
 *
 *   delta   = (1/R) sum_r (anchor - theta_r)          one all-reduce over `group`, every H steps
 *   m       = mu m + delta
 *   anchor  = anchor - lr_outer (delta + mu m)
 *   theta_r = anchor                                  every replica continues from the same point
 *
 * Each replica keeps its inner AdamW state. With R = 1, lr_outer 1 and mu 0 a sync changes
 * nothing but rounding (anchor - (anchor - theta)). Each rank works on its optimizer ranges only
 * (the same ranges on every replica: the partition depends on the inner group's size and rank).
 *
 * Overlapped (`overlap` = D steps; Streaming DiLoCo's overlapped communication): sync k at step
 * t starts the all-reduce of d_k = base - theta_r (the replica's progress since the last sync)
 * and does not wait; the replica trains on, and its progress is measured from base = theta_r.
 * After step t + D (before step t + D + 1) the average lands:
 *
 *   anchor  = outer step of anchor with mean d_k          (as above)
 *   theta_r = anchor + (theta_r - base)                   the D steps since the sync, replanted
 *   base    = anchor
 *
 * so the next pseudo-gradient holds every step since sync k, and the shared parameters take each
 * replica's progress once, D steps late; the wire time hides behind D inner steps (on the
 * worker's data-plane thread). D < H: a sync lands before the next one starts. The landing step
 * depends only on t and D, so runs are reproducible and resume exactly: a checkpoint between
 * sync and landing waits for the average and saves it unapplied (`outer_pending`). The run's
 * last sync lands what is in flight and waits for its own all-reduce, so every replica ends on
 * the same parameters.
 */
export class DiLoCo<V> {
  private pieces: OuterPiece<V>[] = [];
  /** The sums of the pseudo-gradients in flight (overlap), one per unit, and the step before which they land. */
  private inFlight: { sums: Promise<V[]>; landBefore: number } | null = null;
  /** In-flight sums already received (a checkpoint waited for them), not applied yet. */
  private received: { sums: V[]; landBefore: number } | null = null;
  /** How long the last landing waited for its all-reduce, ms (0 when it was done). */
  landWaitMs = 0;

  constructor(
    private readonly device: Device<V>,
    private readonly state: ZeroState<V>,
    readonly o: DiLoCoOptions,
  ) {
    if (o.overlap !== undefined && !(Number.isInteger(o.overlap) && o.overlap >= 1 && o.overlap < o.every)) {
      throw new RangeError(`DiLoCo: overlap ${o.overlap} is not a whole number of steps in [1, ${o.every - 1}]`);
    }
  }

  get overlapping(): boolean {
    return this.o.overlap !== undefined;
  }

  /** Takes the current parameters as the anchor, momentum zero (after init or a load). */
  anchor(): void {
    this.dispose();
    this.pieces = this.state.ranges.map((r, u) => {
      const n = r.end - r.start;
      const anchor = this.device.slice(this.state.master(u), 0, n);
      return { anchor, momentum: this.device.zeros(n, 'fp32'), base: this.overlapping ? this.device.slice(anchor, 0, n) : anchor };
    });
  }

  /** Whether step `step` (0-based) ends an interval of H steps. */
  due(step: number): boolean {
    return (step + 1) % this.o.every === 0;
  }

  /**
   * The outer step after step `step`: average the pseudo-gradients over the replicas, move the
   * anchor, restart every replica from it. Overlapped, unless `final`: starts the average and
   * continues (see above). Final: lands what is in flight first and waits for its own average.
   */
  async sync(step: number, final = false): Promise<void> {
    const { device, state } = this;
    if (final) await this.land();
    const deltas = this.pieces.map((p, u) => device.difference(p.base, state.master(u)));
    if (this.overlapping && !final) {
      this.pieces.forEach((p, u) => {
        device.dispose(p.base);
        p.base = device.slice(state.master(u), 0, device.length(p.anchor));
      });
      const sums = this.averaged(deltas);
      // A failure surfaces where it lands (its landing step, a checkpoint, the end); until then nobody awaits it.
      sums.catch(() => undefined);
      this.inFlight = { sums, landBefore: step + this.o.overlap! + 1 };
      return;
    }
    this.step(await this.averaged(deltas));
    this.pieces.forEach((p, u) => {
      if (this.overlapping) {
        device.dispose(p.base);
        p.base = device.slice(p.anchor, 0, device.length(p.anchor));
      }
      state.replaceMaster(u, device.slice(p.anchor, 0, device.length(p.anchor)));
    });
  }

  /** Before step `step`: lands the average in flight when it is due (D steps after its sync). Whether it landed. */
  async landIfDue(step: number): Promise<boolean> {
    const landBefore = this.received?.landBefore ?? this.inFlight?.landBefore;
    if (landBefore === undefined || step < landBefore) return false;
    await this.land();
    return true;
  }

  /**
   * Lands the average in flight, if any: the outer step moves the anchor, and the replica's
   * progress since the sync is replanted on it (see above).
   */
  async land(): Promise<void> {
    this.landWaitMs = 0;
    await this.receive();
    if (!this.received) return;
    const { sums } = this.received;
    this.received = null;
    this.step(sums);
    const { device, state } = this;
    this.pieces.forEach((p, u) => {
      const n = device.length(p.anchor);
      const progress = device.difference(p.base, state.master(u)); // base - theta
      state.replaceMaster(u, device.difference(p.anchor, progress)); // anchor + (theta - base)
      device.dispose(progress);
      device.dispose(p.base);
      p.base = device.slice(p.anchor, 0, n);
    });
  }

  /** Waits for the all-reduce in flight, keeping its sums unapplied (a checkpoint saves them). */
  private async receive(): Promise<void> {
    if (!this.inFlight) return;
    const { sums, landBefore } = this.inFlight;
    this.inFlight = null;
    const started = performance.now();
    this.received = { sums: await sums, landBefore };
    this.landWaitMs = performance.now() - started;
  }

  /**
   * Ends on the shared parameters without a new interval to average (the run's last step was a
   * sync): lands what is in flight, which puts every replica on the anchor (no step since).
   */
  async settle(): Promise<void> {
    await this.land();
  }

  /**
   * The outer state over this rank's exported pieces, to save (lands what is in flight first):
   * anchor and momentum when `shared` (one replica writes them: they are the same on every
   * replica), and this replica's base when overlapping.
   */
  async exportPieces(locations: readonly ExportLocation[], shared: boolean): Promise<OuterPieceArrays[]> {
    await this.receive();
    const read = (v: V, at: number, n: number): Promise<Float32Array> => this.device.toHost(v, at, at + n);
    const out: OuterPieceArrays[] = [];
    for (const { u, at, n } of locations) {
      const p = this.pieces[u];
      const pending = this.received?.sums[u];
      out.push({
        ...(shared ? { outer_anchor: await read(p.anchor, at, n), outer_momentum: await read(p.momentum, at, n) } : {}),
        ...(this.overlapping ? { outer_base: await read(p.base, at, n) } : {}),
        ...(shared && pending !== undefined ? { outer_pending: await read(pending, at, n) } : {}),
      });
    }
    return out;
  }

  /** Whether a checkpoint now holds an average not yet landed (received, or in flight: exportPieces waits for it). */
  get pending(): boolean {
    return this.received !== null || this.inFlight !== null;
  }

  /**
   * Restores the outer state from a checkpoint of step `resumeStep` (steps done): `flat[u]` is
   * unit u's optimizer range in the flat layout. An average saved unapplied lands before the
   * step it would have (its sync's step + overlap + 1).
   */
  async importState(read: OuterStateReader, flat: readonly { start: number; end: number }[], resumeStep: number, pending: boolean): Promise<void> {
    this.dispose();
    this.inFlight = null;
    const sums: V[] = [];
    for (const { start, end } of flat) {
      const anchor = this.device.fromHost(await read('outer_anchor', start, end), 'fp32');
      const momentum = this.device.fromHost(await read('outer_momentum', start, end), 'fp32');
      const base = this.overlapping ? this.device.fromHost(await read('outer_base', start, end), 'fp32') : anchor;
      this.pieces.push({ anchor, momentum, base });
      if (pending) sums.push(this.device.fromHost(await read('outer_pending', start, end), 'fp32'));
    }
    const lastSync = Math.floor(resumeStep / this.o.every) * this.o.every - 1;
    this.received = pending ? { sums, landBefore: lastSync + this.o.overlap! + 1 } : null;
  }

  /** Bytes of the outer state (anchor, momentum, and the base when overlapping). */
  bytes(): number {
    return this.pieces.reduce((s, p) => s + this.device.bytes(p.anchor) + this.device.bytes(p.momentum) + (p.base !== p.anchor ? this.device.bytes(p.base) : 0), 0);
  }

  dispose(): void {
    for (const p of this.pieces) for (const v of new Set([p.anchor, p.momentum, p.base])) this.device.dispose(v);
    this.pieces = [];
    for (const v of this.received?.sums ?? []) this.device.dispose(v);
    this.received = null;
  }

  /** The sum over replicas of each unit's pseudo-gradient (issued in unit order on every replica). */
  private averaged(deltas: V[]): Promise<V[]> {
    if (this.o.group.size === 1) return Promise.resolve(deltas);
    return Promise.all(deltas.map((d) => (this.device.length(d) === 0 ? d : this.device.allReduce(d, this.o.group, this.o.codec))));
  }

  private step(sums: V[]): void {
    const scale = 1 / this.o.group.size;
    this.pieces.forEach((p, u) => {
      if (this.device.length(p.anchor) === 0) {
        this.device.dispose(sums[u]);
        return;
      }
      this.device.outerNesterov(p, sums[u], { lr: this.o.lr, momentum: this.o.momentum, scale });
      if (!this.overlapping) p.base = p.anchor; // outerNesterov may replace the anchor's vector
    });
  }
}
