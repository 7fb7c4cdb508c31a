import { gradientBuckets } from '../gradient-sync.js';
import type { CollectiveGroup, ReduceGroup, WireCodec } from '../interfaces.js';
import type { VectorStore } from '../precision/vector-store.js';
import type { ZeroPartition } from './partition.js';

/**
 * Reductions of model-state vectors held in any precision. Each works bucket by bucket (or unit
 * by unit): read the range as fp32 (a view for fp32 stores, a decoded copy for 16-bit ones),
 * reduce it over the group (the sums are formed in fp32; `codec` is how values travel), and
 * store the result back (rounded once).
 */

/** Stage 0: every element summed over the group, in buckets of at most `bucketBytes`. */
export async function allReduceStore(store: VectorStore, group: ReduceGroup, codec: WireCodec, bucketBytes: number): Promise<void> {
  if (group.size === 1) return;
  for (const { start, end } of gradientBuckets(store.length, bucketBytes)) {
    const values = store.read(start, end);
    await group.allReduce(values, { op: 'sum', codec });
    if (store.precision !== 'fp32') store.write(start, values);
  }
}

/** Stage 1: each unit reduce-scattered; afterwards only this rank's pieces hold sums. */
export async function reduceScatterStoreByUnit(store: VectorStore, units: readonly { start: number; end: number }[], partition: ZeroPartition, group: CollectiveGroup, codec: WireCodec): Promise<void> {
  if (group.size === 1) return;
  for (const [u, unit] of units.entries()) {
    const values = store.read(unit.start, unit.end);
    const mine = await group.reduceScatter(values, { op: 'sum', codec });
    if (store.precision !== 'fp32') store.write(partition.pieces[u].flatStart, mine);
  }
}

/** An in-place sum over `group` of range [start, end) of a store. */
export async function allReduceRange(store: VectorStore, start: number, end: number, group: ReduceGroup): Promise<void> {
  if (group.size === 1 || end <= start) return;
  const values = store.read(start, end);
  await group.allReduce(values, { op: 'sum' });
  if (store.precision !== 'fp32') store.write(start, values);
}
