import type { Device, OuterPieceState } from '../device/device.js';
import type { ReduceGroup, WireCodec } from '../interfaces.js';
import type { ZeroState } from '../zero/zero-state.js';

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
 */
export class DiLoCo<V> {
  private pieces: OuterPieceState<V>[] = [];

  constructor(
    private readonly device: Device<V>,
    private readonly state: ZeroState<V>,
    readonly o: DiLoCoOptions,
  ) {}

  /** Takes the current parameters as the anchor, momentum zero (after init or a load). */
  anchor(): void {
    this.dispose();
    this.pieces = this.state.ranges.map((r, u) => ({
      anchor: this.device.slice(this.state.master(u), 0, r.end - r.start),
      momentum: this.device.zeros(r.end - r.start, 'fp32'),
    }));
  }

  /** Whether step `step` (0-based) ends an interval of H steps. */
  due(step: number): boolean {
    return (step + 1) % this.o.every === 0;
  }

  /** The outer step: average the pseudo-gradients over the replicas, move the anchor, restart every replica from it. */
  async sync(): Promise<void> {
    const { device, state } = this;
    const scale = 1 / this.o.group.size;
    for (const [u, piece] of this.pieces.entries()) {
      const n = device.length(piece.anchor);
      if (n === 0) continue;
      let delta = device.difference(piece.anchor, state.master(u));
      if (this.o.group.size > 1) delta = await device.allReduce(delta, this.o.group, this.o.codec);
      device.outerNesterov(piece, delta, { lr: this.o.lr, momentum: this.o.momentum, scale });
      state.replaceMaster(u, device.slice(piece.anchor, 0, n));
    }
  }

  /** Bytes of the outer state (anchor and momentum). */
  bytes(): number {
    return this.pieces.reduce((s, p) => s + this.device.bytes(p.anchor) + this.device.bytes(p.momentum), 0);
  }

  dispose(): void {
    for (const p of this.pieces) for (const v of [p.anchor, p.momentum]) this.device.dispose(v);
    this.pieces = [];
  }
}
