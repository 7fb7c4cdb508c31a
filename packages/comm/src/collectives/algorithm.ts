import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';

/**
 * How reduce-scatter and all-gather (and so all-reduce) move data: around a ring (each piece
 * travels n-1 hops, one neighbour each way) or directly (each piece one hop, every rank talks to
 * every other). Both send 2(n-1)/n of the buffer per rank and give identical fp32 results; see
 * ring.ts and direct.ts. 'auto' picks per call with `chooseAlgorithm`.
 *
 * All-reduce over a group that spans several machines with the same number (2 or more) of its
 * ranks on each goes hierarchical under 'auto' and 'hierarchical' (hierarchical-all-reduce.ts:
 * reduce-scatter inside each machine, all-reduce of each shard between machines, all-gather
 * inside); 'ring' and 'direct' keep it flat. Elsewhere 'hierarchical' is 'auto'.
 */
export type CollectiveAlgorithm = 'ring' | 'direct' | 'hierarchical' | 'auto';

/** Largest group 'auto' runs directly: n-1 sockets per rank stay few, and each piece skips n-2 hops. */
export const DIRECT_MAX_RANKS = 4;

/** The algorithm for a group of `size` ranks ('auto' resolved). Every rank computes the same. */
export function chooseAlgorithm(algorithm: CollectiveAlgorithm, size: number): 'ring' | 'direct' {
  if (algorithm === 'ring' || algorithm === 'direct') return algorithm;
  return size >= 3 && size <= DIRECT_MAX_RANKS ? 'direct' : 'ring';
}

export function checkAlgorithm(value: unknown, what: string): CollectiveAlgorithm {
  if (value === 'ring' || value === 'direct' || value === 'hierarchical' || value === 'auto') return value;
  throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `${what}: unknown algorithm ${JSON.stringify(value)}`, {
    hint: "use 'ring', 'direct', 'hierarchical' or 'auto' (the same on every rank)",
  });
}
