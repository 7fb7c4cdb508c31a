import { describe, expect, it } from 'vitest';
import { BucketPool } from './bucket-pool.js';

describe('BucketPool', () => {
  it('gives back zeroed buckets, reusing memory by length, and counts what it created', () => {
    const pool = new BucketPool();
    const a = pool.take(4);
    a.fill(7);
    pool.give(a);
    const b = pool.take(4);
    expect(b).toBe(a); // the same memory again...
    expect([...b]).toEqual([0, 0, 0, 0]); // ...zeroed
    const c = pool.take(4); // a second one in use at once: a new bucket
    expect(c).not.toBe(b);
    pool.take(8);
    expect(pool.allocatedBytes).toBe(4 * (4 + 4 + 8));
    pool.give(b);
    pool.give(c);
    pool.take(4);
    pool.take(4);
    expect(pool.allocatedBytes).toBe(4 * 16); // no growth while reuse suffices
  });
});
