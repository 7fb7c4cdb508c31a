/**
 * Reusable byte buffers for received pieces and encoded sends, by exact size (pieces are
 * mostly one size). Fresh large allocations cost page faults and GC work on every piece;
 * reusing a few dozen buffers removes both. Buffers are 8-byte aligned (own ArrayBuffers).
 */
export class BufferPool {
  private readonly free = new Map<number, Uint8Array[]>();
  private readonly owned = new WeakSet<Uint8Array>();

  constructor(private readonly maxPerSize = 8) {}

  acquire(bytes: number): Uint8Array {
    const buf = this.free.get(bytes)?.pop() ?? new Uint8Array(Buffer.allocUnsafeSlow(bytes).buffer, 0, bytes);
    this.owned.add(buf);
    return buf;
  }

  /** Returns a buffer to the pool; anything the pool did not hand out is ignored. */
  release(buf: Uint8Array | undefined): void {
    if (!buf || !this.owned.has(buf)) return;
    this.owned.delete(buf);
    let list = this.free.get(buf.byteLength);
    if (!list) this.free.set(buf.byteLength, (list = []));
    if (list.length < this.maxPerSize) list.push(buf);
  }

  owns(buf: Uint8Array | undefined): boolean {
    return buf !== undefined && this.owned.has(buf);
  }
}
