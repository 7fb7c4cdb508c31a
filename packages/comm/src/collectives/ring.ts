import type { WireCodec, ReduceOp } from '../codecs/codec.js';
import type { Header } from '../transport/frame.js';
import { CollectiveOp, intField, type GroupLink } from './collective-op.js';
import { shardRange } from './shard.js';
import { PHASE_ALL_GATHER, PHASE_REDUCE_SCATTER, type Descriptor } from './wire.js';

export type RingKind = 'allReduce' | 'reduceScatter' | 'allGather';

export interface RingParams {
  kind: RingKind;
  /** The full-length fp32 buffer: reduced in place (allReduce, own shard for reduceScatter), or the allGather output. */
  buf: Float32Array;
  codec: WireCodec;
  op: ReduceOp;
  /** Divide the reduced shard by the group size (op 'avg'). */
  average: boolean;
  /** Elements per pipelined piece. */
  pieceElems: number;
}

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
 * Forwarding reuses the received frame: intermediate sums are written into it in place.
 */
export class RingCollective extends CollectiveOp {
  private readonly p: RingParams;
  private readonly n: number;
  private readonly r: number;
  private readonly next: number;
  private readonly prev: number;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly pieces: number[] = [];
  /** One flag per (phase, shard, piece), to refuse duplicates. */
  private readonly seen: Uint8Array;
  private readonly seenBase: number[] = [];
  private readonly totalPieces: number;

  constructor(link: GroupLink, seq: number, desc: Descriptor, params: RingParams) {
    super(link, seq, desc);
    this.p = params;
    this.n = link.size;
    this.r = link.rank;
    this.next = (this.r + 1) % this.n;
    this.prev = (this.r - 1 + this.n) % this.n;
    let total = 0;
    for (let c = 0; c < this.n; c++) {
      const { start, end } = shardRange(params.buf.length, this.n, c);
      this.starts.push(start);
      this.ends.push(end);
      this.pieces.push(Math.ceil((end - start) / params.pieceElems));
      this.seenBase.push(total);
      total += this.pieces[c];
    }
    this.totalPieces = total;
    this.seen = new Uint8Array(2 * total);
    const sum = (skip: number): number => this.pieces.reduce((acc, k, c) => (c === skip ? acc : acc + k), 0);
    if (params.kind !== 'allGather') this.expected += sum(this.prev); // every shard but the one we start with
    if (params.kind !== 'reduceScatter') this.expected += sum(this.r); // every shard but our own
  }

  upstream(): number[] {
    return [this.prev];
  }

  private slice(shard: number, piece: number): Float32Array {
    const start = this.starts[shard] + piece * this.p.pieceElems;
    return this.p.buf.subarray(start, Math.min(this.ends[shard], start + this.p.pieceElems));
  }

  start(): void {
    const { codec, kind } = this.p;
    if (kind !== 'allGather') {
      const shard = this.prev; // reduce-scatter step 0: our own values of shard r-1
      for (let pc = 0; pc < this.pieces[shard]; pc++) {
        this.link.send(this.next, () => {
          const values = this.slice(shard, pc);
          const { frame, payload } = this.dataFrame(PHASE_REDUCE_SCATTER, shard, pc, values.length * codec.bytesPerElement);
          codec.encode(values, payload);
          return frame;
        });
      }
    } else {
      // all-gather step 0: our own shard, rounded first so we keep what the others will decode
      codec.roundTrip(this.p.buf.subarray(this.starts[this.r], this.ends[this.r]));
      for (let pc = 0; pc < this.pieces[this.r]; pc++) this.sendGathered(pc);
    }
  }

  private sendGathered(pc: number): void {
    const values = this.slice(this.r, pc);
    const { frame, payload } = this.dataFrame(PHASE_ALL_GATHER, this.r, pc, values.length * this.p.codec.bytesPerElement);
    this.p.codec.encode(values, payload);
    this.link.send(this.next, frame);
  }

  onData(from: number, h: Header, payload: Uint8Array | undefined, frame: Buffer): void {
    if (from !== this.prev) throw new RangeError(`ring data from group rank ${from}, expected ${this.prev}`);
    const phase = intField(h, 'ph', PHASE_REDUCE_SCATTER, PHASE_ALL_GATHER + 1);
    const shard = intField(h, 'sh', 0, this.n);
    const pc = intField(h, 'pc', 0, this.pieces[shard]);
    const { codec, op, kind } = this.p;
    if (phase === PHASE_REDUCE_SCATTER ? kind === 'allGather' || shard === this.prev : kind === 'reduceScatter' || shard === this.r) {
      throw new RangeError(`unexpected phase ${phase} piece of shard ${shard}`);
    }
    const flag = phase * this.totalPieces + this.seenBase[shard] + pc;
    if (this.seen[flag]) throw new RangeError(`duplicate piece ${pc} of shard ${shard}`);
    const values = this.slice(shard, pc);
    if ((payload?.byteLength ?? 0) !== values.length * codec.bytesPerElement) {
      throw new RangeError(`piece ${pc} of shard ${shard} has ${payload?.byteLength ?? 0} bytes, expected ${values.length * codec.bytesPerElement}`);
    }
    this.seen[flag] = 1;
    this.received++;
    if (phase === PHASE_REDUCE_SCATTER) {
      if (shard !== this.r) {
        codec.reduceIntoWire(values, payload!, op); // partial sum, forwarded in the same frame
        this.link.send(this.next, frame);
        return;
      }
      codec.reduceIntoLocal(values, payload!, op); // our shard is complete
      if (this.p.average) {
        const n = this.n;
        for (let i = 0; i < values.length; i++) values[i] /= n;
      }
      if (kind === 'allReduce') {
        codec.roundTrip(values);
        this.sendGathered(pc);
      }
      return;
    }
    codec.decode(payload!, values);
    if (shard !== this.next) this.link.send(this.next, frame); // the next rank is the last to need it
  }
}
