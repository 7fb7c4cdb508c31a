import { KernelArena } from '../kernels/kernel-arena.js';

/** Memory an arena aims for; small slots are grouped (up to MAX_SLOTS_PER_ARENA) until it is reached. */
const ARENA_TARGET_BYTES = 64 * 1024 * 1024;
const MAX_SLOTS_PER_ARENA = 256;

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

  /** A buffer of exactly `bytes` (at most slotBytes) inside a kernel arena. */
  acquire(bytes: number): Uint8Array {
    if (bytes > this.slotBytes) throw new RangeError(`BufferPool: ${bytes} bytes requested, slots hold ${this.slotBytes}`);
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

  /** Arenas created so far (for tests and stats). */
  get arenaCount(): number {
    return this.arenas.length;
  }
}
