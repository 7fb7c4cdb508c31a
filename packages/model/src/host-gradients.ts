import type { GradValue } from './layers/layer.js';
import type { UnitGradBuffer } from './segments.js';

/**
 * A unit's gradient added into a host array (GPT's flat gradient, tests): host kernels' arrays
 * at once, tf kernels' tensors through an awaited download (settle() waits for them).
 */
export class HostGradients implements UnitGradBuffer {
  private readonly pending: Promise<void>[] = [];

  constructor(readonly host: Float32Array) {}

  /** One buffer per unit over its range of `flat` (flat.subarray(unit.start, unit.end)). */
  static forUnits(units: readonly { start: number; end: number }[], flat: Float32Array): Map<number, HostGradients> {
    return new Map(units.map((u, i) => [i, new HostGradients(flat.subarray(u.start, u.end))] as const));
  }

  /** Waits until every buffer holds what was added to it. */
  static async settle(buffers: ReadonlyMap<number, HostGradients>): Promise<void> {
    for (const b of buffers.values()) await Promise.all(b.pending.splice(0));
  }

  add(offset: number, g: GradValue): void {
    if (g instanceof Float32Array) return addInto(this.host, offset, g);
    this.pending.push((g.data() as Promise<Float32Array>).then((v) => {
      g.dispose();
      addInto(this.host, offset, v);
    }));
  }
}

function addInto(dst: Float32Array, offset: number, src: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[offset + i] += src[i];
}
