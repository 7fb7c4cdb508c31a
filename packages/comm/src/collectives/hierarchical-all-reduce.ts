import type { Codec } from '../codecs/codec.js';
import type { ProcessGroup } from './process-group.js';

/**
 * Hierarchical all-reduce (2-D, as NCCL's tree/ring split and Horovod's hierarchical allreduce):
 * a group of H machines with L of its ranks on each, L >= 2, H >= 2.
 *
 *   1. reduce-scatter inside each machine (`local`, L ranks, Unix sockets): local rank j holds
 *      shard j of the machine's sum                                   2(L-1)/L N bytes, intra
 *   2. all-reduce of shard j between machines (`cross`: local rank j of every machine; L such
 *      rings run side by side, one per local rank)                    2(H-1)/H N/L bytes per rank
 *   3. all-gather inside each machine                                  (intra again)
 *
 * Per machine the slow links carry 2(H-1)/H N bytes in all, against 2(HL-1)/(HL) N through each
 * machine's link in a flat ring over the HL ranks; and the inter-machine phase takes 2(H-1)
 * latency steps instead of 2(HL-1). Sums are formed in a different order than the flat ring's:
 * the same result within fp32 rounding, not bit for bit.
 */
export class Hierarchy {
  /** When the last call issued its cross-machine all-reduce, and its all-gather. */
  private issued = { cross: Promise.resolve(), gather: Promise.resolve() };

  constructor(
    /** This rank's machine's members of the group (group order), for the reduce-scatters... */
    readonly scatter: ProcessGroup,
    /** ...the members at this rank's local position on every machine (machine order)... */
    readonly cross: ProcessGroup,
    /**
     * ...and the same members as `scatter` again, for the all-gathers: a group of their own, as a
     * call's all-gather is issued when its cross phase ends, which on two ranks of one machine can
     * fall before or after the next call's reduce-scatter.
     */
    readonly gather: ProcessGroup,
  ) {}

  /**
   * buf <- sum (or average) over the group, in place. Several may be in flight: each phase is
   * issued in call order on every rank, on its own group (a group's collectives must come in
   * one order), whatever order the earlier phases of different calls finish in on different ranks.
   */
  async allReduce(buf: Float32Array, groupSize: number, opts: { codec?: Codec; timeoutMs?: number; average: boolean }): Promise<void> {
    const o = { op: 'sum' as const, ...(opts.codec ? { codec: opts.codec } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) };
    const before = this.issued;
    let crossIssued!: () => void;
    let gatherIssued!: () => void;
    this.issued = { cross: new Promise((r) => (crossIssued = r)), gather: new Promise((r) => (gatherIssued = r)) };
    try {
      const mine = await this.scatter.reduceScatter(buf, o); // issued now; a view of buf: this rank's shard, summed over the machine
      await before.cross;
      const across = this.cross.allReduce(mine, o);
      crossIssued();
      await across;
      await before.gather;
      const gathered = this.gather.allGather(mine, buf.length, o);
      gatherIssued();
      buf.set(await gathered);
    } finally {
      crossIssued();
      gatherIssued();
    }
    if (opts.average) for (let i = 0; i < buf.length; i++) buf[i] /= groupSize;
  }
}

/**
 * The machines of a group: its global ranks grouped by machine, machines in order of first
 * member. Null unless there are 2+ machines with the same number (2+) of members each.
 */
export function machineLayout(ranks: readonly number[], machineOf: (globalRank: number) => string): number[][] | null {
  const byMachine = new Map<string, number[]>();
  for (const r of ranks) {
    const m = machineOf(r);
    const list = byMachine.get(m) ?? [];
    list.push(r);
    byMachine.set(m, list);
  }
  const machines = [...byMachine.values()];
  const per = machines[0]?.length ?? 0;
  return machines.length >= 2 && per >= 2 && machines.every((m) => m.length === per) ? machines : null;
}
