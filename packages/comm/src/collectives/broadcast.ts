import type { Header } from '../transport/frame.js';
import { CollectiveOp, intField, sameMemory, type GroupLink } from './collective-op.js';
import { PHASE_BROADCAST, type Descriptor } from './wire.js';

/**
 * Pipelined chain broadcast: root -> root+1 -> ... -> root-1 (mod n), piece by piece. Every rank
 * receives each piece into its buffer and forwards it from there, so every link carries the buffer
 * once and the time is about (bytes + (n-2) pieces) / bandwidth.
 */
export class BroadcastOp extends CollectiveOp {
  private readonly bytes: Uint8Array;
  private readonly pieceBytes: number;
  private readonly count: number;
  private readonly next: number;
  private readonly prev: number;
  private readonly isRoot: boolean;
  private readonly seen: Uint8Array;

  constructor(link: GroupLink, seq: number, desc: Descriptor, bytes: Uint8Array, pieceBytes: number) {
    super(link, seq, desc);
    this.bytes = bytes;
    this.pieceBytes = pieceBytes;
    this.count = Math.ceil(bytes.byteLength / pieceBytes);
    this.next = (link.rank + 1) % link.size;
    this.prev = (link.rank - 1 + link.size) % link.size;
    this.isRoot = link.rank === desc.root;
    this.seen = new Uint8Array(this.count);
    this.expected = this.isRoot ? 0 : this.count;
  }

  upstream(): number[] {
    return this.isRoot ? [] : [this.prev];
  }

  private piece(pc: number): Uint8Array {
    return this.bytes.subarray(pc * this.pieceBytes, Math.min(this.bytes.byteLength, (pc + 1) * this.pieceBytes));
  }

  start(): void {
    if (!this.isRoot) return;
    for (let pc = 0; pc < this.count; pc++) {
      this.sendTracked(this.next, () => ({ header: this.header(PHASE_BROADCAST, 0, pc), payload: this.piece(pc) }));
    }
  }

  override target(from: number, h: Header, length: number): Uint8Array | undefined {
    if (this.isRoot || from !== this.prev) return undefined;
    const pc = h.pc;
    if (typeof pc !== 'number' || !Number.isInteger(pc) || pc < 0 || pc >= this.count || this.seen[pc]) return undefined;
    const dst = this.piece(pc);
    return dst.byteLength === length ? dst : undefined;
  }

  onData(from: number, h: Header, payload: Uint8Array | undefined): void {
    if (this.isRoot || from !== this.prev) throw new RangeError(`broadcast data from group rank ${from}, expected ${this.prev}`);
    intField(h, 'ph', PHASE_BROADCAST, PHASE_BROADCAST + 1);
    const pc = intField(h, 'pc', 0, this.count);
    const dst = this.piece(pc);
    if (this.seen[pc]) throw new RangeError(`duplicate broadcast piece ${pc}`);
    if ((payload?.byteLength ?? 0) !== dst.byteLength) throw new RangeError(`broadcast piece ${pc} has ${payload?.byteLength ?? 0} bytes, expected ${dst.byteLength}`);
    this.seen[pc] = 1;
    this.received++;
    if (!sameMemory(payload!, dst)) dst.set(payload!);
    if (this.next !== this.desc.root) this.sendTracked(this.next, () => ({ header: this.header(PHASE_BROADCAST, 0, pc), payload: dst }));
  }
}
