import * as tf from '@tensorflow/tfjs-core';

/** A kernel as tf.profile records it (kernelTimeMs resolved once the profile ends). */
interface ProfiledKernel {
  name: string;
  kernelTimeMs: number | { error: string } | Promise<number | { error: string }>;
}

/** The engine's profiling state (tfjs-core 4.x; typed loosely on purpose). */
function activeKernels(): ProfiledKernel[] | null {
  const state = (tf.engine() as unknown as { state: { profiling: boolean; activeProfile?: { kernels: ProfiledKernel[] } } }).state;
  return state.profiling && state.activeProfile ? state.activeProfile.kernels : null;
}

/** Kernel time per phase under tf.profile: GPU time from timestamp queries on WebGPU, wall time per (synchronised) kernel elsewhere. */
export interface KernelPhase {
  phase: string;
  kernels: number;
  ms: number;
}

/**
 * Wall-clock time per named phase, for the benchmark's ms breakdown. TF.js ops on wasm and cpu run
 * synchronously, so timing a synchronous call measures its kernels (on asynchronous backends the
 * numbers are dispatch times only). Under tf.profile each phase also collects the kernels it ran,
 * so that kernelPhases() gives the device time per phase on asynchronous backends too.
 */
export class Profiler {
  private readonly ms = new Map<string, number>();
  private readonly calls = new Map<string, number>();
  private readonly kernelRanges = new Map<string, [number, number][]>();

  time<R>(phase: string, fn: () => R): R {
    const t0 = performance.now();
    const kernels = activeKernels();
    const first = kernels?.length ?? 0;
    try {
      return fn();
    } finally {
      this.ms.set(phase, (this.ms.get(phase) ?? 0) + performance.now() - t0);
      this.calls.set(phase, (this.calls.get(phase) ?? 0) + 1);
      if (kernels) {
        const ranges = this.kernelRanges.get(phase) ?? [];
        ranges.push([first, kernels.length]);
        this.kernelRanges.set(phase, ranges);
      }
    }
  }

  reset(): void {
    this.ms.clear();
    this.calls.clear();
    this.kernelRanges.clear();
  }

  /**
   * Kernel count and time per phase from a finished tf.profile (`kernels` of its result) that
   * ran while this profiler timed phases, by index (null: not a kernel, left out); kernels
   * outside every phase are `(other)`.
   */
  kernelPhases(kernels: readonly ({ kernelTimeMs: unknown } | null)[]): KernelPhase[] {
    const msOf = (k: { kernelTimeMs: unknown }) => (typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0);
    const owned = new Uint8Array(kernels.length);
    const out: KernelPhase[] = [];
    for (const [phase, ranges] of this.kernelRanges) {
      let n = 0;
      let ms = 0;
      for (const [a, b] of ranges) {
        for (let i = a; i < b; i++) {
          if (owned[i] || kernels[i] === null) continue; // a phase inside another counts once, in the inner one's order of finishing
          owned[i] = 1;
          n++;
          ms += msOf(kernels[i]!);
        }
      }
      out.push({ phase, kernels: n, ms });
    }
    let n = 0;
    let ms = 0;
    kernels.forEach((k, i) => {
      if (!owned[i] && k !== null) {
        n++;
        ms += msOf(k);
      }
    });
    if (n > 0) out.push({ phase: '(other)', kernels: n, ms });
    return out;
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
