/**
 * Data-parallel gradient reduction in buckets of at most `bucketBytes` (PyTorch DDP's bucketing:
 * bounded message sizes; ZeRO stage 0 reduces a unit larger than a bucket in several).
 */
export interface GradientSyncOptions {
  /** Upper bound on one all-reduce's fp32 payload (DDP's default is 25 MiB). */
  bucketBytes: number;
}

export const DEFAULT_GRADIENT_SYNC: GradientSyncOptions = { bucketBytes: 25 * 1024 * 1024 };

/** Bucket boundaries over a flat vector of `length` fp32 elements. */
export function gradientBuckets(length: number, bucketBytes: number): { start: number; end: number }[] {
  const perBucket = Math.max(1, Math.floor(bucketBytes / 4));
  const buckets: { start: number; end: number }[] = [];
  for (let start = 0; start < length; start += perBucket) buckets.push({ start, end: Math.min(length, start + perBucket) });
  return buckets;
}
