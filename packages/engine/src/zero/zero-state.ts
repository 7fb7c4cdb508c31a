import { encodeBf16, encodeFp16 } from '@trainer/comm';
import { adamwStep, clipRanges, type AdamWConfig, type Range } from '../adamw.js';
import type { Device, PieceOptimizerState, Precision } from '../device/device.js';
import { roundInPlace } from '../device/host-device.js';
import type { ZeroPartition } from './partition.js';

/** A rank's share of one piece of the training state, as a checkpoint saves it (host copies). */
export interface ExportedPiece {
  flatStart: number;
  flatEnd: number;
  /** fp32 parameters: the master copy under 16-bit precisions. */
  params: Float32Array;
  /** bf16/fp16 only: the working parameters' 16-bit codes, exactly round(params). */
  params16?: Uint16Array;
  m: Float32Array;
  v: Float32Array;
  /** DiLoCo (outer/diloco.ts): the outer anchor and momentum (replica 0's ranks), this replica's base (overlapped syncs). */
  outer_anchor?: Float32Array;
  outer_momentum?: Float32Array;
  outer_base?: Float32Array;
  /** DiLoCo between an overlapped sync and its landing (replica 0's ranks): the sum of the pseudo-gradients, unapplied. */
  outer_pending?: Float32Array;
}

/** Reads flat range [start, end) of one kind of state from wherever it is stored (a checkpoint, an init). */
export type StateReader = (kind: 'params' | 'm' | 'v', start: number, end: number) => Promise<Float32Array>;
/** Reads flat range [start, end) of DiLoCo's outer state from a checkpoint. */
export type OuterStateReader = (kind: 'outer_anchor' | 'outer_momentum' | 'outer_base' | 'outer_pending', start: number, end: number) => Promise<Float32Array>;

/** Where an exported piece sits: unit u, elements [at, at + n) of its optimizer range, flat [flatStart, flatEnd). */
export interface ExportLocation { u: number; at: number; n: number; flatStart: number; flatEnd: number }

/**
 * The optimizer state one rank keeps, per parameter unit, on its Device: the fp32 master weights
 * and AdamW's m and v of the unit's *optimizer range*, and the update on them.
 *
 *   replicated (ZeRO stage 0)  the whole unit, on every rank of the data-parallel group
 *   partitioned (stages 1-3)   this rank's piece of the unit (ZeroPartition)
 *
 * Under fp32 the master is also what compute reads; under bf16/fp16 compute reads its rounding,
 * which the strategies make (rounded on the device, or by the wire codec of an all-gather).
 */
export class ZeroState<V> {
  /** Per unit: the optimizer range, relative to the unit's start. */
  readonly ranges: readonly Range[];
  private readonly pieces: PieceOptimizerState<V>[];
  /** Per unit: the ranges (relative to the optimizer range) that get weight decay. */
  private readonly decay: Range[][];
  /** Updates taken so far (t in AdamW's bias corrections). */
  optimizerStep = 0;

  constructor(
    readonly units: readonly Range[],
    private readonly partition: ZeroPartition,
    readonly replicated: boolean,
    private readonly device: Device<V>,
    private readonly adamw: AdamWConfig,
    decayRanges: readonly Range[],
  ) {
    this.ranges = units.map((unit, u) => {
      const p = partition.pieces[u];
      return replicated ? { start: 0, end: unit.end - unit.start } : { start: p.flatStart - unit.start, end: p.flatEnd - unit.start };
    });
    this.decay = units.map((unit, u) => clipRanges(decayRanges, { start: unit.start + this.ranges[u].start, end: unit.start + this.ranges[u].end }));
    this.pieces = this.ranges.map((r) => {
      const n = r.end - r.start;
      return { master: device.zeros(n, 'fp32'), m: device.zeros(n, 'fp32'), v: device.zeros(n, 'fp32') };
    });
  }

  /** Unit u's master values (its optimizer range). */
  master(u: number): V {
    return this.pieces[u].master;
  }

  /**
   * Sets unit u's optimizer range from host values: the master weights, and AdamW's moments
   * when given (zeros otherwise). The arrays may be adopted.
   */
  setPiece(u: number, master: Float32Array, m?: Float32Array, v?: Float32Array): void {
    const p = this.pieces[u];
    const n = this.ranges[u].end - this.ranges[u].start;
    for (const [name, values] of [['master', master], ['m', m], ['v', v]] as const) {
      if (values && values.length !== n) throw new Error(`internal: unit ${u} ${name} has ${values.length} values, its optimizer range ${n}`);
    }
    this.device.dispose(p.master);
    p.master = this.device.fromHost(master, 'fp32');
    if (m) {
      this.device.dispose(p.m);
      p.m = this.device.fromHost(m, 'fp32');
    }
    if (v) {
      this.device.dispose(p.v);
      p.v = this.device.fromHost(v, 'fp32');
    }
  }

  /** Replaces unit u's master values with `values` (adopted; AdamW's moments stay). */
  replaceMaster(u: number, values: V): void {
    this.device.dispose(this.pieces[u].master);
    this.pieces[u].master = values;
  }

  /** AdamW on every unit's optimizer range with that range's reduced gradient (consumed). */
  update(grads: V[], lr: number, gradFactor: number): void {
    this.optimizerStep += 1;
    const h = adamwStep(this.adamw, this.optimizerStep, lr, gradFactor);
    grads.forEach((g, u) => {
      if (this.device.length(g) > 0) this.device.adamw(this.pieces[u], g, this.decay[u], h);
      this.device.dispose(g);
    });
  }

  /**
   * This rank's share for a sharded checkpoint: for each of its ZeroPartition pieces, the flat
   * range, the fp32 parameters (the master), AdamW's m and v, and under bf16/fp16 the 16-bit codes
   * of the working parameters (the master's rounding). Every element is owned by exactly one
   * rank whatever the stage (a replicated state exports only this rank's partition piece).
   */
  async exportPieces(precision: Precision): Promise<{ optimizerStep: number; precision: Precision; pieces: ExportedPiece[] }> {
    const pieces: ExportedPiece[] = [];
    for (const { u, at, n, flatStart, flatEnd } of this.exportLocations()) {
      const s = this.pieces[u];
      const params = await this.device.toHost(s.master, at, at + n);
      const out: ExportedPiece = { flatStart, flatEnd, params, m: await this.device.toHost(s.m, at, at + n), v: await this.device.toHost(s.v, at, at + n) };
      if (precision !== 'fp32') {
        out.params16 = new Uint16Array(n);
        (precision === 'bf16' ? encodeBf16 : encodeFp16)(params, out.params16);
      }
      pieces.push(out);
    }
    return { optimizerStep: this.optimizerStep, precision, pieces };
  }

  /** Where each exported piece (this rank's partition pieces, in order) sits in the units' optimizer ranges. */
  exportLocations(): ExportLocation[] {
    const out: ExportLocation[] = [];
    for (const [u, piece] of this.partition.pieces.entries()) {
      if (piece.flatEnd === piece.flatStart) continue;
      // Where the partition piece sits inside this unit's optimizer range.
      const at = piece.flatStart - this.units[u].start - this.ranges[u].start;
      out.push({ u, at, n: piece.flatEnd - piece.flatStart, flatStart: piece.flatStart, flatEnd: piece.flatEnd });
    }
    return out;
  }

  /** The export's layout without reading anything: each piece's flat range (for sizing a shard). */
  exportRanges(): { flatStart: number; flatEnd: number }[] {
    return this.partition.pieces.filter((p) => p.flatEnd > p.flatStart).map((p) => ({ flatStart: p.flatStart, flatEnd: p.flatEnd }));
  }

  bytes(): { master: number; optimizer: number } {
    let master = 0;
    let optimizer = 0;
    for (const p of this.pieces) {
      master += this.device.bytes(p.master);
      optimizer += this.device.bytes(p.m) + this.device.bytes(p.v);
    }
    return { master, optimizer };
  }

  dispose(): void {
    for (const p of this.pieces) for (const v of [p.master, p.m, p.v]) this.device.dispose(v);
  }
}

/** A host copy of fp32 values rounded to `precision` (what compute reads from a master). */
export function roundedCopy(values: Float32Array, precision: Precision): Float32Array {
  const out = values.slice();
  if (precision !== 'fp32') roundInPlace(out, precision);
  return out;
}
