/**
 * Reusable fp32 gradient buckets, by length. A sink takes a zeroed bucket when a segment's
 * backward starts writing a unit's gradient and gives it back once the bucket has been added or
 * reduced; the next step (or the next block, units of a size repeat) gets the same memory back.
 * Allocating them afresh each step cost a garbage collection of several MiB per step and the page
 * faults of touching new memory (measured: ~8% of a bf16 step on gpt-nano).
 */
export class BucketPool {
  private readonly free = new Map<number, Float32Array[]>();
  /**
   * Bytes of every bucket this pool has created: all stay alive (in use or kept for reuse), so
   * this is what the buckets cost in memory. It grows only when more buckets of one length are
   * in use at once than ever before.
   */
  allocatedBytes = 0;

  /** A zeroed bucket of `length` elements. */
  take(length: number): Float32Array {
    const buf = this.free.get(length)?.pop();
    if (!buf) {
      this.allocatedBytes += 4 * length;
      return new Float32Array(length);
    }
    buf.fill(0);
    return buf;
  }

  give(buf: Float32Array): void {
    const list = this.free.get(buf.length);
    if (list) list.push(buf);
    else this.free.set(buf.length, [buf]);
  }
}
