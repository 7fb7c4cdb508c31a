import type { Header } from '../transport/frame.js';
import type { PayloadTarget } from '../transport/stream-link.js';
import { KernelArena } from '../kernels/kernel-arena.js';
import { bytesOf, CollectiveOp, intField, sameMemory, type GroupLink } from './collective-op.js';
import { ShardPieces, type ShardedParams } from './shard-pieces.js';
import { PHASE_ALL_GATHER, PHASE_REDUCE_SCATTER, type Descriptor } from './wire.js';

/** Reduce an arriving fp32 piece in steps of at least this many elements (64 KiB). */
const MIN_EARLY_REDUCE = 16 * 1024;

/**
 * Ring reduce-scatter and ring all-gather over n ranks, pipelined in pieces.
 *
 * The buffer is split into n shards by shardRange, each shard into pieces of `pieceElems`.
 *   reduce-scatter, step s = 0..n-2: rank r sends shard (r-s-1) mod n to r+1 and receives shard
 *     (r-s-2) mod n from r-1; it adds its own values and forwards, so after n-1 steps it holds the
 *     full reduction of shard r (the shard shardRange gives it).
 *   all-gather, step s = 0..n-2: rank r sends shard (r-s) mod n and receives shard (r-s-1) mod n,
 *     storing it and forwarding it unchanged, so every rank ends with the same bytes.
 * Each piece moves on as soon as it arrives (no step barrier), so sending, receiving and adding
 * overlap. The sum of each element is formed in a fixed ring order, so results are the same run
 * to run; the all-gather copies one set of bytes everywhere, so they are the same on every rank.
 * On stream channels nothing is copied that need not be: fp32 pieces are sent from the caller's
 * buffer, all-gather pieces are received straight into it, intermediate sums are written into the
 * received piece and forwarded from there.
 */
export class RingCollective extends CollectiveOp {
  private readonly p: ShardedParams;
  private readonly n: number;
  private readonly r: number;
  private readonly next: number;
  private readonly prev: number;
  private readonly layout: ShardPieces;
  /** The arena of the caller's buffer, when it has one (Communicator.allocBuffer): wire buffers are taken there first. */
  private readonly near: KernelArena | undefined;
  /** fp32 pieces of our own shard being received: elements already added while still in cache. */
  private readonly reducedEarly = new Map<number, number>();

  constructor(link: GroupLink, seq: number, desc: Descriptor, params: ShardedParams) {
    super(link, seq, desc);
    this.p = params;
    this.n = link.size;
    this.r = link.rank;
    this.next = (this.r + 1) % this.n;
    this.prev = (this.r - 1 + this.n) % this.n;
    this.layout = new ShardPieces(params.buf, this.n, params.pieceElems);
    this.near = KernelArena.of(params.buf);
    if (params.kind !== 'allGather') this.expected += this.layout.piecesExcept(this.prev); // every shard but the one we start with
    if (params.kind !== 'reduceScatter') this.expected += this.layout.piecesExcept(this.r); // every shard but our own
  }

  /** Applied to the reduced shard: the group size for op 'avg', else 1. */
  private get divisor(): number {
    return this.p.average ? this.n : 1;
  }

  upstream(): number[] {
    return [this.prev];
  }

  private slice(shard: number, piece: number): Float32Array {
    return this.layout.slice(shard, piece);
  }

  /** Our values of a piece as wire bytes: the buffer itself for fp32 (zero copy), else an encoded pool buffer (keep: round our values too). */
  private wireOf(values: Float32Array, keep: boolean): Uint8Array {
    const { codec } = this.p;
    if (codec.name === 'fp32') return bytesOf(values);
    const out = this.link.pool.acquire(values.length * codec.bytesPerElement, this.near);
    codec.encode(values, out, keep);
    return out;
  }

  start(): void {
    const { kind } = this.p;
    if (kind !== 'allGather') {
      const shard = this.prev; // reduce-scatter step 0: our own values of shard r-1
      for (let pc = 0; pc < this.layout.pieces[shard]; pc++) {
        this.sendTracked(this.next, () => ({ header: this.header(PHASE_REDUCE_SCATTER, shard, pc), payload: this.wireOf(this.slice(shard, pc), false) }));
      }
    } else {
      // all-gather step 0: our own shard, rounded as it is encoded so we keep what the others decode
      for (let pc = 0; pc < this.layout.pieces[this.r]; pc++) {
        this.sendTracked(this.next, () => ({ header: this.header(PHASE_ALL_GATHER, this.r, pc), payload: this.wireOf(this.slice(this.r, pc), true) }));
      }
    }
  }

  /** Where an incoming piece goes: straight into the output for an fp32 all-gather piece, else a pooled buffer. */
  override target(from: number, h: Header, length: number): Uint8Array | PayloadTarget | undefined {
    const located = this.locate(from, h);
    if (!located || length !== located.values.length * this.p.codec.bytesPerElement) return undefined;
    if (this.p.codec.name !== 'fp32') return this.link.pool.acquire(length, this.near);
    if (located.phase === PHASE_ALL_GATHER) return bytesOf(located.values);
    // The piece that completes our shard is added into our buffer part by part, right after the
    // kernel wrote each part, while it is still in cache (measured: ~8% faster at world 2; for
    // the forwarded pieces of larger rings it made no measurable difference, so they wait).
    if (located.shard !== this.r) return this.link.pool.acquire(length, this.near);
    const buffer = this.link.pool.acquire(length, this.near);
    const { flag, values } = located;
    const { codec, op } = this.p;
    const divisor = this.divisor;
    this.reducedEarly.set(flag, 0);
    return {
      buffer,
      onProgress: (filled) => {
        const done = this.reducedEarly.get(flag);
        const upTo = filled >>> 2;
        if (done === undefined || (upTo - done < MIN_EARLY_REDUCE && upTo !== values.length)) return;
        codec.reduceIntoLocal(values.subarray(done, upTo), buffer.subarray(done * 4, upTo * 4), op, divisor, false);
        this.reducedEarly.set(flag, upTo);
      },
    };
  }

  /** Validates a piece's address; undefined (or a throw from onData) when it is not one we expect. */
  private locate(from: number, h: Header): { phase: number; shard: number; pc: number; flag: number; values: Float32Array } | undefined {
    if (from !== this.prev) return undefined;
    const phase = intField(h, 'ph', PHASE_REDUCE_SCATTER, PHASE_ALL_GATHER + 1);
    const shard = intField(h, 'sh', 0, this.n);
    const pc = intField(h, 'pc', 0, this.layout.pieces[shard]);
    const kind = this.p.kind;
    if (phase === PHASE_REDUCE_SCATTER ? kind === 'allGather' || shard === this.prev : kind === 'reduceScatter' || shard === this.r) return undefined;
    const flag = this.layout.flag(phase, shard, pc);
    if (this.layout.isSeen(flag)) return undefined;
    return { phase, shard, pc, flag, values: this.slice(shard, pc) };
  }

  onData(from: number, h: Header, payload: Uint8Array | undefined): void {
    const located = this.locate(from, h);
    if (!located) throw new RangeError(`unexpected ring piece ${JSON.stringify({ from, ph: h.ph, sh: h.sh, pc: h.pc })}`);
    const { phase, shard, pc, flag, values } = located;
    const { codec, op, kind } = this.p;
    if ((payload?.byteLength ?? 0) !== values.length * codec.bytesPerElement) {
      throw new RangeError(`piece ${pc} of shard ${shard} has ${payload?.byteLength ?? 0} bytes, expected ${values.length * codec.bytesPerElement}`);
    }
    this.layout.markSeen(flag);
    this.received++;
    const pool = this.link.pool;
    if (phase === PHASE_REDUCE_SCATTER) {
      const wire = pool.adopt(payload!);
      if (wire !== payload) pool.release(payload);
      // Elements already reduced as they arrived (fp32, received in place) are skipped.
      const early = this.reducedEarly.get(flag) ?? 0;
      this.reducedEarly.delete(flag);
      const rest = early > 0 ? values.subarray(early) : values;
      const restWire = early > 0 ? wire.subarray(early * 4) : wire;
      if (shard !== this.r) {
        if (rest.length > 0) codec.reduceIntoWire(rest, restWire, op); // partial result, forwarded in the same buffer
        this.sendTracked(this.next, () => ({ header: this.header(phase, shard, pc), payload: wire }));
        return;
      }
      // our shard is complete; a lossy codec also encodes it for the all-gather (and keeps the rounded values)
      const lossy = kind === 'allReduce' && codec.name !== 'fp32';
      if (rest.length > 0) codec.reduceIntoLocal(rest, restWire, op, this.divisor, lossy);
      if (lossy) {
        this.sendTracked(this.next, () => ({ header: this.header(PHASE_ALL_GATHER, this.r, pc), payload: wire }));
        return;
      }
      pool.release(wire);
      if (kind === 'allReduce') this.sendTracked(this.next, () => ({ header: this.header(PHASE_ALL_GATHER, this.r, pc), payload: bytesOf(values) }));
      return;
    }
    let wire = payload!;
    if (!sameMemory(wire, values)) {
      if (codec.name !== 'fp32') {
        wire = pool.adopt(payload!);
        if (wire !== payload) pool.release(payload);
      }
      codec.decode(wire, values);
    }
    // the next rank is the last to need this shard; forward from where it now lives
    if (shard !== this.next) this.sendTracked(this.next, () => ({ header: this.header(phase, shard, pc), payload: wire }));
    else pool.release(wire);
  }
}
