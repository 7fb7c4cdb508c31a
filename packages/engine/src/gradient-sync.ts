import type { CollectiveGroup } from './interfaces.js';

/**
 * Data-parallel gradient reduction in buckets of at most `bucketBytes` (PyTorch DDP's bucketing:
 * bounded message sizes; ZeRO stage 0 reduces a unit larger than a bucket in several).
 */
export interface GradientSyncOptions {
  /** Upper bound on one all-reduce's fp32 payload (DDP's default is 25 MiB). */
  bucketBytes: number;
  /**
   * Stages 0 and 1: reduce each unit's gradient as soon as the step's last backward pass has
   * finished it, while backward goes on with the units before it (DDP's overlap), instead of
   * after the whole backward. The same collectives in the same order: the same sums, bit for bit.
   */
  overlap: boolean;
  /**
   * ZeRO's per-step collectives (backward's reductions, ZeRO-3's gathers and their prefetch, the
   * updated masters' all-gather) over this group instead of the trainer's: the same ranks in the
   * same order, on a data-plane thread whose sockets progress while this thread computes.
   */
  group?: CollectiveGroup;
}

export const DEFAULT_GRADIENT_SYNC: GradientSyncOptions = { bucketBytes: 25 * 1024 * 1024, overlap: true };

/** Bucket boundaries over a flat vector of `length` fp32 elements. */
export function gradientBuckets(length: number, bucketBytes: number): { start: number; end: number }[] {
  const perBucket = Math.max(1, Math.floor(bucketBytes / 4));
  const buckets: { start: number; end: number }[] = [];
  for (let start = 0; start < length; start += perBucket) buckets.push({ start, end: Math.min(length, start + perBucket) });
  return buckets;
}
