import type { TensorParallelGroup } from '../tensor-parallel/mappings.js';

/**
 * `n` in-process tensor-parallel groups for tests: all-reduce waits for every member, combines
 * their buffers in rank order (sum or max) and writes the result into each. Calls are matched by
 * their order, like real collectives.
 */
export function fakeTensorParallelGroups(n: number): TensorParallelGroup[] {
  const slots: { buf: Float32Array; op: string; resolve: () => void }[][] = [];
  const calls = new Array<number>(n).fill(0);
  return Array.from({ length: n }, (_, rank) => ({
    size: n,
    rank,
    allReduce(buf: Float32Array, opts?: { op?: 'sum' | 'max' }): Promise<void> {
      const seq = calls[rank]++;
      const slot = (slots[seq] ??= []);
      return new Promise<void>((resolve, reject) => {
        slot[rank] = { buf, op: opts?.op ?? 'sum', resolve };
        if (slot.filter(Boolean).length < n) return;
        if (slot.some((c) => c.op !== slot[0].op || c.buf.length !== slot[0].buf.length)) return reject(new Error(`mismatched all-reduce ${seq}`));
        const out = new Float32Array(buf.length).fill(slot[0].op === 'max' ? -Infinity : 0);
        for (const c of slot) for (let i = 0; i < out.length; i++) out[i] = c.op === 'max' ? Math.max(out[i], c.buf[i]) : out[i] + c.buf[i];
        for (const c of slot) {
          c.buf.set(out);
          c.resolve();
        }
      });
    },
  }));
}
