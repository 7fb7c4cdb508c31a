import { KernelArena } from '../kernels/kernel-arena.js';

/** Memory an arena aims for; small slots are grouped (up to MAX_SLOTS_PER_ARENA) until it is reached. */
const ARENA_TARGET_BYTES = 64 * 1024 * 1024;
const MAX_SLOTS_PER_ARENA = 256;
/** Wire slots next to a registered buffer (virtual memory until used: a slow peer can hold many pieces). */
const REGISTERED_SLOTS = 32;

/**
 * The wire buffers of the ring collectives: received pieces and encoded sends, at most
 * `slotBytes` each (the communicator's piece size in fp32 bytes). They live in KernelArenas, so
 * the codec kernels can work on them in place, and are reused: fresh large allocations would cost
 * page faults and GC work on every piece. Arenas are added when every slot is taken (a slow
 * neighbour can hold many pieces) and kept for reuse.
 */
export class BufferPool {
  private readonly arenas: KernelArena[] = [];
  private readonly slotsPerArena: number;

  constructor(readonly slotBytes: number) {
    this.slotsPerArena = Math.max(1, Math.min(MAX_SLOTS_PER_ARENA, Math.floor(ARENA_TARGET_BYTES / slotBytes)));
  }

  /**
   * A buffer of exactly `bytes` (at most slotBytes) inside a kernel arena: `near`'s when it has a
   * free slot of this size (so kernels reach the caller's buffer there in place), else any.
   */
  acquire(bytes: number, near?: KernelArena): Uint8Array {
    if (bytes > this.slotBytes) throw new RangeError(`BufferPool: ${bytes} bytes requested, slots hold ${this.slotBytes}`);
    if (near && near.slotBytes === this.slotBytes) {
      const buf = near.acquire(bytes);
      if (buf) return buf;
    }
    for (const arena of this.arenas) {
      const buf = arena.acquire(bytes);
      if (buf) return buf;
    }
    const arena = new KernelArena(this.slotBytes, this.slotsPerArena);
    this.arenas.push(arena);
    return arena.acquire(bytes)!;
  }

  /** Returns a buffer to its arena; anything the pool did not hand out is ignored. */
  release(buf: Uint8Array | undefined): void {
    if (buf) KernelArena.of(buf)?.release(buf);
  }

  /** `payload` itself if it is a pool buffer, else a pool buffer holding a copy of it. */
  adopt(payload: Uint8Array): Uint8Array {
    if (KernelArena.of(payload)) return payload;
    const buf = this.acquire(payload.byteLength);
    buf.set(payload);
    return buf;
  }

  /**
   * A Float32Array of `length` zeros in an arena of its own, with up to REGISTERED_SLOTS wire slots
   * next to it: collectives on it run the kernels on it in place (no staging copies). The arena is not
   * kept by the pool; it lives as long as the array does.
   */
  allocBuffer(length: number): Float32Array {
    const slots = Math.max(2, Math.min(REGISTERED_SLOTS, Math.floor(ARENA_TARGET_BYTES / this.slotBytes)));
    return new KernelArena(this.slotBytes, slots, Math.max(1, length)).buffer!.subarray(0, length);
  }

  /** Arenas created so far (for tests and stats). */
  get arenaCount(): number {
    return this.arenas.length;
  }
}
