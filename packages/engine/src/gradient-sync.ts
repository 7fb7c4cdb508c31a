import type { ReduceGroup, WireCodec } from './interfaces.js';

/**
 * Data-parallel gradient reduction: g <- sum_r g_r (or the mean) over the data-parallel group,
 * in buckets of at most `bucketBytes` (PyTorch DDP's bucketing: bounded message sizes, and a
 * bucket can be reduced while the next is prepared).
 */
export interface GradientSyncOptions {
  /** Upper bound on one all-reduce's fp32 payload (DDP's default is 25 MiB). */
  bucketBytes: number;
  /** Wire codec for gradients (accumulation is fp32 whatever the codec). */
  codec: WireCodec;
}

export const DEFAULT_GRADIENT_SYNC: GradientSyncOptions = { bucketBytes: 25 * 1024 * 1024, codec: 'fp32' };

/** Bucket boundaries over a flat vector of `length` fp32 elements. */
export function gradientBuckets(length: number, bucketBytes: number): { start: number; end: number }[] {
  const perBucket = Math.max(1, Math.floor(bucketBytes / 4));
  const buckets: { start: number; end: number }[] = [];
  for (let start = 0; start < length; start += perBucket) buckets.push({ start, end: Math.min(length, start + perBucket) });
  return buckets;
}

export async function allReduceGradients(
  grads: Float32Array, group: ReduceGroup, op: 'sum' | 'avg', opts: GradientSyncOptions = DEFAULT_GRADIENT_SYNC,
): Promise<void> {
  if (group.size === 1) return;
  for (const { start, end } of gradientBuckets(grads.length, opts.bucketBytes)) {
    await group.allReduce(grads.subarray(start, end), { op, codec: opts.codec });
  }
}
