import type { Header } from '../transport/frame.js';
import type { PayloadTarget } from '../transport/stream-link.js';
import { foldContributions, fp32Codec, MAX_FOLDED } from '../codecs/fp32.js';
import { KernelArena } from '../kernels/kernel-arena.js';
import { bytesOf, CollectiveOp, intField, sameMemory, type GroupLink } from './collective-op.js';
import { ShardPieces, type ShardedParams } from './shard-pieces.js';
import { PHASE_ALL_GATHER, PHASE_REDUCE_SCATTER, type Descriptor } from './wire.js';

/** The contributions to one piece of our shard: folded in a fixed order, early arrivals parked. */
interface Fold {
  /** Offset k (1..n-1) of the next contribution to fold: it comes from group rank (r + k) mod n. */
  next: number;
  /** fp32 pool buffer holding the sum so far. */
  acc: Uint8Array | undefined;
  /** Contributions that arrived before their turn, by offset. */
  parked: Map<number, Uint8Array>;
}

/**
 * Direct reduce-scatter and all-gather: every rank exchanges with every other rank, so each piece
 * makes one hop instead of travelling n-1 hops around a ring. The bytes each rank sends and
 * receives are the same as the ring's, 2(n-1)/n of the buffer; what changes is that no piece
 * waits for a neighbour to forward it, and each rank keeps n-1 sockets busy at once. On one
 * machine with fewer cores than ranks, that is what decides the time: a ring stalls whenever the
 * next rank in the chain is not running.
 *
 *   reduce-scatter: rank r sends its values of shard j to rank j (for every j != r), and sums the
 *     n-1 contributions to shard r in a fixed order, its own values last:
 *       v[r+1] + v[r+2] + ... + v[r-1] + v[r]       (indices mod n)
 *     which is the order the ring forms the same sum in, so fp32 results equal the ring's bit for
 *     bit. A contribution that arrives before its turn waits in its pool buffer. With a 16-bit
 *     codec each contribution is rounded once (by its sender), not at every hop.
 *   all-gather: rank r sends shard r to every other rank, which receives it in place (fp32) or
 *     decodes it; the owner keeps exactly what it sent, so every rank ends with the same bytes.
 */
export class DirectCollective extends CollectiveOp {
  private readonly p: ShardedParams;
  private readonly n: number;
  private readonly r: number;
  private readonly others: number[] = [];
  private readonly layout: ShardPieces;
  /** The arena of the caller's buffer, when it has one (Communicator.allocBuffer): wire buffers are taken there first. */
  private readonly near: KernelArena | undefined;
  private readonly folds: Fold[] = [];
  /** Reduce-scatter pieces received, one flag per (sender, piece of our shard). */
  private readonly contributed: Uint8Array;

  constructor(link: GroupLink, seq: number, desc: Descriptor, params: ShardedParams) {
    super(link, seq, desc);
    this.p = params;
    this.n = link.size;
    this.r = link.rank;
    for (let k = 1; k < this.n; k++) this.others.push((this.r + k) % this.n);
    this.layout = new ShardPieces(params.buf, this.n, params.pieceElems);
    this.near = KernelArena.of(params.buf);
    const own = this.layout.pieces[this.r];
    if (params.kind !== 'allGather') {
      this.expected += (this.n - 1) * own;
      for (let pc = 0; pc < own; pc++) this.folds.push({ next: 1, acc: undefined, parked: new Map() });
    }
    if (params.kind !== 'reduceScatter') this.expected += this.layout.piecesExcept(this.r);
    this.contributed = new Uint8Array(this.n * own);
  }

  upstream(): number[] {
    return this.others;
  }

  start(): void {
    const { kind, codec } = this.p;
    if (kind === 'allGather') {
      for (let pc = 0; pc < this.layout.pieces[this.r]; pc++) this.sendOwnPiece(pc);
      return;
    }
    // reduce-scatter: our values of every other shard, straight to its owner (interleaved by piece)
    const most = Math.max(...this.others.map((j) => this.layout.pieces[j]));
    for (let pc = 0; pc < most; pc++) {
      for (const j of this.others) {
        if (pc >= this.layout.pieces[j]) continue;
        this.sendTracked(j, () => {
          const values = this.layout.slice(j, pc);
          if (codec.name === 'fp32') return { header: this.header(PHASE_REDUCE_SCATTER, j, pc), payload: bytesOf(values) };
          const wire = this.link.pool.acquire(values.length * codec.bytesPerElement, this.near);
          codec.encode(values, wire, false);
          return { header: this.header(PHASE_REDUCE_SCATTER, j, pc), payload: wire };
        });
      }
    }
  }

  /** All-gather: one piece of our shard to every other rank (a 16-bit codec rounds our values as it encodes). */
  private sendOwnPiece(pc: number): void {
    const { codec } = this.p;
    const values = this.layout.slice(this.r, pc);
    const header = this.header(PHASE_ALL_GATHER, this.r, pc);
    if (codec.name === 'fp32') {
      this.sendShared(this.others, header, bytesOf(values));
      return;
    }
    const wire = this.link.pool.acquire(values.length * codec.bytesPerElement, this.near);
    codec.encode(values, wire, true);
    this.sendShared(this.others, header, wire);
  }

  /** fp32 all-gather pieces land in the output; everything else in a pool buffer. */
  override target(from: number, h: Header, length: number): Uint8Array | PayloadTarget | undefined {
    const located = this.locate(from, h);
    if (!located || length !== located.values.length * this.p.codec.bytesPerElement) return undefined;
    if (located.phase === PHASE_ALL_GATHER && this.p.codec.name === 'fp32') return bytesOf(located.values);
    return this.link.pool.acquire(length, this.near);
  }

  /** Validates a piece's address: reduce-scatter pieces are of our shard, all-gather pieces of the sender's. */
  private locate(from: number, h: Header): { phase: number; pc: number; flag: number; values: Float32Array } | undefined {
    const phase = intField(h, 'ph', PHASE_REDUCE_SCATTER, PHASE_ALL_GATHER + 1);
    const shard = intField(h, 'sh', 0, this.n);
    const kind = this.p.kind;
    if (phase === PHASE_REDUCE_SCATTER ? kind === 'allGather' || shard !== this.r : kind === 'reduceScatter' || shard !== from) return undefined;
    const pc = intField(h, 'pc', 0, this.layout.pieces[shard]);
    // reduce-scatter: one flag per (sender, piece of our shard); all-gather: the layout's flags
    const flag = phase === PHASE_REDUCE_SCATTER ? from * this.layout.pieces[this.r] + pc : this.layout.flag(phase, shard, pc);
    if (phase === PHASE_REDUCE_SCATTER ? this.contributed[flag] === 1 : this.layout.isSeen(flag)) return undefined;
    return { phase, pc, flag, values: this.layout.slice(shard, pc) };
  }

  onData(from: number, h: Header, payload: Uint8Array | undefined): void {
    const located = from === this.r ? undefined : this.locate(from, h);
    if (!located) throw new RangeError(`unexpected piece ${JSON.stringify({ from, ph: h.ph, sh: h.sh, pc: h.pc })}`);
    const { phase, pc, flag, values } = located;
    const { codec } = this.p;
    if ((payload?.byteLength ?? 0) !== values.length * codec.bytesPerElement) {
      throw new RangeError(`piece ${pc} from rank ${from} has ${payload?.byteLength ?? 0} bytes, expected ${values.length * codec.bytesPerElement}`);
    }
    this.received++;
    if (phase === PHASE_REDUCE_SCATTER) {
      this.contributed[flag] = 1;
      this.folds[pc].parked.set((from - this.r + this.n) % this.n, payload!);
      this.fold(pc);
      return;
    }
    this.layout.markSeen(flag);
    const pool = this.link.pool;
    if (!sameMemory(payload!, values)) {
      const wire = codec.name === 'fp32' ? payload! : pool.adopt(payload!); // the 16-bit kernels need it in an arena
      codec.decode(wire, values);
      if (wire !== payload) pool.release(wire);
    }
    pool.release(payload);
  }

  /** Folds the contributions to piece pc that are next in order; when all are in, completes it. */
  private fold(pc: number): void {
    const f = this.folds[pc];
    const { codec, op } = this.p;
    const pool = this.link.pool;
    if (codec.name === 'fp32' && this.n - 1 <= MAX_FOLDED) {
      // fp32 with up to 3 contributions: wait for all, then one pass (c1 + c2 + c3 + own) instead
      // of one pass per contribution; falls through when they are not in one arena
      if (f.parked.size < this.n - 1) return;
      const wires = this.others.map((_, i) => f.parked.get(i + 1)!);
      if (foldContributions(this.layout.slice(this.r, pc), wires, op, this.p.average ? this.n : 1)) {
        f.parked.clear();
        f.next = this.n;
        for (const w of wires) pool.release(w);
        if (this.p.kind === 'allReduce') this.sendOwnPiece(pc);
        return;
      }
    }
    for (let wire = f.parked.get(f.next); wire !== undefined; wire = f.parked.get(f.next)) {
      f.parked.delete(f.next);
      if (f.acc === undefined) {
        if (codec.name === 'fp32') f.acc = pool.adopt(wire); // the first contribution is the sum so far
        else codec.decodeInto(wire, (f.acc = pool.acquire(wire.byteLength * 2, this.near)));
      } else {
        codec.accumulate(f.acc, wire, op);
      }
      if (f.acc !== wire) pool.release(wire);
      f.next++;
    }
    if (f.next < this.n) return;
    // every other rank's contribution is in: add our own values last
    const values = this.layout.slice(this.r, pc);
    const acc = f.acc!;
    f.acc = undefined;
    const divisor = this.p.average ? this.n : 1;
    if (this.p.kind === 'allReduce' && codec.name !== 'fp32') {
      // sum, round and encode for the all-gather in one pass; the codes go out from the accumulator
      this.sendShared(this.others, this.header(PHASE_ALL_GATHER, this.r, pc), codec.finishInto(values, acc, op, divisor));
      return;
    }
    fp32Codec.reduceIntoLocal(values, acc, op, divisor, false);
    pool.release(acc);
    if (this.p.kind === 'allReduce') this.sendOwnPiece(pc);
  }
}
