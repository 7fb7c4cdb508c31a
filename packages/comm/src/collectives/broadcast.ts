import type { Header } from '../transport/frame.js';
import { CollectiveOp, intField, type GroupLink } from './collective-op.js';
import { PHASE_BROADCAST, type Descriptor } from './wire.js';

/**
 * Pipelined chain broadcast: root -> root+1 -> ... -> root-1 (mod n), piece by piece. Every rank
 * stores each piece and forwards the received frame unchanged, so every link carries the buffer
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
      this.link.send(this.next, () => {
        const src = this.piece(pc);
        const { frame, payload } = this.dataFrame(PHASE_BROADCAST, 0, pc, src.byteLength);
        payload.set(src);
        return frame;
      });
    }
  }

  onData(from: number, h: Header, payload: Uint8Array | undefined, frame: Buffer): void {
    if (this.isRoot || from !== this.prev) throw new RangeError(`broadcast data from group rank ${from}, expected ${this.prev}`);
    intField(h, 'ph', PHASE_BROADCAST, PHASE_BROADCAST + 1);
    const pc = intField(h, 'pc', 0, this.count);
    const dst = this.piece(pc);
    if (this.seen[pc]) throw new RangeError(`duplicate broadcast piece ${pc}`);
    if ((payload?.byteLength ?? 0) !== dst.byteLength) throw new RangeError(`broadcast piece ${pc} has ${payload?.byteLength ?? 0} bytes, expected ${dst.byteLength}`);
    this.seen[pc] = 1;
    this.received++;
    dst.set(payload!);
    if (this.next !== this.desc.root) this.link.send(this.next, frame);
  }
}
