import type { CollectiveGroup } from '../interfaces.js';

/**
 * In-process stand-ins for a data-parallel group, for engine tests: `n` groups whose
 * collectives wait for all n members, combine their buffers in rank order and hand every member
 * its result. Calls are matched by their order, like real collectives; a mismatch fails all.
 */
type Call = { kind: string; buf: Float32Array; op: string; total: number; resolve: (out: Float32Array) => void; reject: (e: Error) => void };

function shard(length: number, parts: number, index: number): { start: number; end: number } {
  const base = Math.floor(length / parts);
  const extra = length % parts;
  const start = index * base + Math.min(index, extra);
  return { start, end: start + base + (index < extra ? 1 : 0) };
}

export function fakeGroups(n: number): CollectiveGroup[] {
  const slots: Call[][] = [];
  const calls = new Array<number>(n).fill(0);

  const enter = (rank: number, call: Omit<Call, 'resolve' | 'reject'>): Promise<Float32Array> =>
    new Promise((resolve, reject) => {
      const seq = calls[rank]++;
      const slot = (slots[seq] ??= []);
      slot[rank] = { ...call, resolve, reject };
      if (slot.filter(Boolean).length < n) return;
      const first = slot[0];
      if (slot.some((c) => c.kind !== first.kind || c.op !== first.op || c.total !== first.total)) {
        const e = new Error(`mismatched collective ${seq}: ${slot.map((c) => `${c.kind}/${c.op}/${c.total}`).join(', ')}`);
        return slot.forEach((c) => c.reject(e));
      }
      if (first.kind === 'allGather') {
        const out = new Float32Array(first.total);
        slot.forEach((c, r) => out.set(c.buf, shard(first.total, n, r).start));
        return slot.forEach((c) => c.resolve(new Float32Array(out)));
      }
      const sum = new Float32Array(first.buf.length);
      for (const c of slot) for (let i = 0; i < sum.length; i++) sum[i] = c.op === 'max' ? Math.max(sum[i], c.buf[i]) : sum[i] + c.buf[i];
      if (first.op === 'avg') for (let i = 0; i < sum.length; i++) sum[i] /= n;
      slot.forEach((c, r) => {
        c.buf.set(sum);
        const s = first.kind === 'reduceScatter' ? shard(sum.length, n, r) : { start: 0, end: sum.length };
        c.resolve(c.buf.subarray(s.start, s.end));
      });
    });

  return Array.from({ length: n }, (_, rank) => ({
    rank,
    size: n,
    allReduce: async (buf, opts) => void (await enter(rank, { kind: 'allReduce', buf, op: opts?.op ?? 'sum', total: buf.length })),
    reduceScatter: (buf, opts) => enter(rank, { kind: 'reduceScatter', buf, op: opts?.op ?? 'sum', total: buf.length }),
    allGather: (piece, total) => enter(rank, { kind: 'allGather', buf: piece, op: '', total }),
  }));
}
