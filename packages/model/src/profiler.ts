/**
 * Wall-clock time per named phase, for the benchmark's ms breakdown. TF.js ops on wasm and cpu run
 * synchronously, so timing a synchronous call measures its kernels (on asynchronous backends the
 * numbers are dispatch times only).
 */
export class Profiler {
  private readonly ms = new Map<string, number>();
  private readonly calls = new Map<string, number>();

  time<R>(phase: string, fn: () => R): R {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.ms.set(phase, (this.ms.get(phase) ?? 0) + performance.now() - t0);
      this.calls.set(phase, (this.calls.get(phase) ?? 0) + 1);
    }
  }

  reset(): void {
    this.ms.clear();
    this.calls.clear();
  }

  /** Total ms and call count per phase, in first-seen order. */
  report(): { phase: string; ms: number; calls: number }[] {
    return [...this.ms.entries()].map(([phase, ms]) => ({ phase, ms, calls: this.calls.get(phase) ?? 0 }));
  }
}

/** Times the forward/backward methods of a layer-like object under `name.forward` / `name.backward`. */
export function timed<L extends { forward: (...a: never[]) => unknown; backward: (...a: never[]) => unknown }>(
  name: string,
  layer: L,
  profiler: Profiler | undefined,
): L {
  if (profiler === undefined) return layer;
  const wrapped = Object.create(layer) as L;
  const fwd = layer.forward.bind(layer) as (...a: unknown[]) => unknown;
  const bwd = layer.backward.bind(layer) as (...a: unknown[]) => unknown;
  (wrapped as { forward: unknown }).forward = (...a: unknown[]) => profiler.time(`${name}.forward`, () => fwd(...a));
  (wrapped as { backward: unknown }).backward = (...a: unknown[]) => profiler.time(`${name}.backward`, () => bwd(...a));
  return wrapped;
}
