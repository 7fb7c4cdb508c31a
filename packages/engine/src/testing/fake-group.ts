import type { ReduceGroup } from '../interfaces.js';

/**
 * In-process stand-ins for a data-parallel group, for engine tests: `n` ReduceGroups whose
 * all-reduce waits for all n members, reduces their buffers in rank order and writes the result
 * to every member. Calls are matched by their order, like real collectives.
 */
export function fakeGroups(n: number): ReduceGroup[] {
  const pending: { buf: Float32Array; op: string; resolve: () => void }[][] = [];
  const calls = new Array<number>(n).fill(0);
  return Array.from({ length: n }, (_, rank) => ({
    rank,
    size: n,
    allReduce(buf: Float32Array, opts?: { op?: 'sum' | 'avg' | 'max' }): Promise<void> {
      const seq = calls[rank]++;
      const slot = (pending[seq] ??= []);
      return new Promise<void>((resolve, reject) => {
        slot[rank] = { buf, op: opts?.op ?? 'sum', resolve };
        if (slot.filter(Boolean).length < n) return;
        const ops = new Set(slot.map((s) => s.op));
        const lengths = new Set(slot.map((s) => s.buf.length));
        if (ops.size !== 1 || lengths.size !== 1) return reject(new Error(`mismatched collective ${seq}`));
        const out = new Float32Array(buf.length);
        for (const s of slot) for (let i = 0; i < out.length; i++) out[i] = s.op === 'max' ? Math.max(out[i], s.buf[i]) : out[i] + s.buf[i];
        if (slot[0].op === 'avg') for (let i = 0; i < out.length; i++) out[i] /= n;
        for (const s of slot) {
          s.buf.set(out);
          s.resolve();
        }
      });
    },
  }));
}
