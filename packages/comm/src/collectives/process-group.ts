import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { getCodec, type Codec } from '../codecs/codec.js';
import { BarrierOp } from './collective-op.js';
import { BroadcastOp } from './broadcast.js';
import type { CollectiveStats, TimedCollectiveKind } from './collective-stats.js';
import type { GroupState } from './group-state.js';
import { checkAlgorithm, chooseAlgorithm, type CollectiveAlgorithm } from './algorithm.js';
import { DirectCollective } from './direct.js';
import { Hierarchy, machineLayout } from './hierarchical-all-reduce.js';
import { RingCollective } from './ring.js';
import type { ShardedKind } from './shard-pieces.js';
import { shardRange } from './shard.js';
import type { Logger } from '../transport/logger.js';
import type { Descriptor } from './wire.js';

export interface CollectiveOptions {
  /** Wire format of the values (default fp32); sums are always formed in fp32. */
  codec?: Codec;
  /** Fail with TRAINER_ERR_COLLECTIVE_TIMEOUT after this long (default: the communicator's collectiveTimeoutMs). */
  timeoutMs?: number;
  /** Ring or direct exchange (default: the communicator's algorithm); must be the same on every rank. */
  algorithm?: CollectiveAlgorithm;
}

/** Settings a group takes from its communicator. */
export interface GroupDefaults {
  timeoutMs: number;
  pieceElems: number;
  algorithm: CollectiveAlgorithm;
}

/** Where ranks run, and sub-groups of a group (for hierarchical collectives); the communicator's. */
export interface GroupTopology {
  /** The machine a global rank runs on (ranks with the same name share one). */
  machineOf(globalRank: number): string;
  /** A group of `ranks` (global) belonging to group `parentId`: the same on every member that asks, whenever it asks. */
  subGroup(parentId: string, ranks: number[]): ProcessGroup;
  readonly logger: Logger;
}

function badArg(message: string, hint: string): TrainerError {
  return new TrainerError(CommErrorCode.INVALID_ARGUMENT, message, { hint });
}

/**
 * A set of ranks that run collectives together (like a torch.distributed ProcessGroup).
 * All methods are asynchronous and must be called by every member in the same order; several
 * may be in flight at once. Ranks passed to broadcast/send/recv are ranks within the group.
 */
export class ProcessGroup {
  /** This process's rank within the group, -1 if it is not a member. */
  readonly rank: number;
  readonly size: number;
  /** The members' global ranks, in group-rank order. */
  readonly ranks: readonly number[];
  private readonly state: GroupState;
  private readonly defaults: GroupDefaults;
  /** The communicator's accumulator, shared by all its groups (Communicator.collectiveStats). */
  private readonly stats: CollectiveStats;

  private readonly topology: GroupTopology | undefined;
  /** The hierarchy all-reduce uses (null: flat), made on first use. */
  private hierarchy: Hierarchy | null | undefined;

  /** Created by Communicator.newGroup (and as its worldGroup). */
  constructor(state: GroupState, defaults: GroupDefaults, stats: CollectiveStats, topology?: GroupTopology) {
    this.state = state;
    this.defaults = defaults;
    this.stats = stats;
    this.topology = topology;
    this.rank = state.rank;
    this.size = state.size;
    this.ranks = state.ranks;
  }

  /**
   * buf <- op over all members' buf (in place). Reduce-scatter then all-gather; over several
   * machines (sum and avg) hierarchical unless the algorithm is 'ring' or 'direct' (algorithm.ts).
   */
  async allReduce(buf: Float32Array, opts: CollectiveOptions & { op?: 'sum' | 'avg' | 'max' } = {}): Promise<void> {
    this.checkFloat32(buf, 'allReduce');
    const op = opts.op ?? 'sum';
    if (op !== 'sum' && op !== 'avg' && op !== 'max') throw badArg(`allReduce: unknown op ${JSON.stringify(op)}`, 'use sum, avg or max');
    const algorithm = checkAlgorithm(opts.algorithm ?? this.defaults.algorithm, 'allReduce');
    const h = op !== 'max' && (algorithm === 'auto' || algorithm === 'hierarchical') ? this.hierarchyOf() : null;
    if (h && buf.length >= h.scatter.size) {
      this.memberRank();
      await h.allReduce(buf, this.size, { ...(opts.codec ? { codec: opts.codec } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}), average: op === 'avg' });
      return;
    }
    await this.ring('allReduce', buf, opts, op);
  }

  /** Whether all-reduce over this group goes hierarchical (several machines, the same number of members on each) under 'auto'. */
  get hierarchical(): boolean {
    return this.hierarchyOf() !== null;
  }

  private hierarchyOf(): Hierarchy | null {
    if (this.hierarchy !== undefined) return this.hierarchy;
    const topology = this.topology;
    const machines = topology && this.rank >= 0 ? machineLayout(this.ranks, (r) => topology.machineOf(r)) : null;
    if (!topology || !machines) return (this.hierarchy = null);
    const me = this.ranks[this.rank];
    const mine = machines.find((m) => m.includes(me))!;
    const j = mine.indexOf(me);
    const id = this.state.id;
    this.hierarchy = new Hierarchy(topology.subGroup(`${id}>scatter`, mine), topology.subGroup(`${id}>cross`, machines.map((m) => m[j])), topology.subGroup(`${id}>gather`, mine));
    if (this.rank === 0) topology.logger.info({ group: this.state.name, machines: machines.length, perMachine: mine.length }, `all-reduce over group ${this.state.name} is hierarchical: ${machines.length} machines x ${mine.length} ranks`);
    return this.hierarchy;
  }

  /**
   * Reduces buf across members and returns this rank's shard of the result:
   * buf.subarray(start, end) with { start, end } = shardRange(buf.length, size, rank), reduced in
   * place (the rest of buf is left as it was).
   */
  async reduceScatter(buf: Float32Array, opts: CollectiveOptions & { op?: 'sum' | 'avg' } = {}): Promise<Float32Array> {
    this.checkFloat32(buf, 'reduceScatter');
    const op = opts.op ?? 'sum';
    if (op !== 'sum' && op !== 'avg') throw badArg(`reduceScatter: unknown op ${JSON.stringify(op)}`, 'use sum or avg');
    await this.ring('reduceScatter', buf, opts, op);
    const { start, end } = shardRange(buf.length, this.size, this.rank);
    return buf.subarray(start, end);
  }

  /** Concatenates every member's shard (laid out by shardRange(totalLength, size, i)) into a new array. */
  async allGather(shard: Float32Array, totalLength: number, opts: CollectiveOptions = {}): Promise<Float32Array> {
    this.checkFloat32(shard, 'allGather');
    if (!Number.isInteger(totalLength) || totalLength < 0) throw badArg(`allGather: totalLength must be a non-negative integer, got ${totalLength}`, 'pass the length of the gathered result');
    const { start, end } = shardRange(totalLength, this.size, this.memberRank());
    if (shard.length !== end - start) {
      throw badArg(`allGather: rank ${this.rank} passed a shard of ${shard.length} elements, shardRange(${totalLength}, ${this.size}, ${this.rank}) has ${end - start}`,
        'split the buffer with shardRange so every rank passes its own part');
    }
    const out = new Float32Array(totalLength);
    out.set(shard, start);
    await this.ring('allGather', out, opts, 'sum');
    return out;
  }

  /** Copies root's buf into every member's buf (in place); root is a group rank. */
  async broadcast(buf: Float32Array | Uint8Array, root: number, opts: { timeoutMs?: number } = {}): Promise<void> {
    if (!(buf instanceof Float32Array) && !(buf instanceof Uint8Array)) throw badArg('broadcast: buf must be a Float32Array or Uint8Array', 'pass a typed array');
    this.checkPeer(root, 'broadcast root', true);
    this.memberRank();
    if (this.size === 1) {
      this.stats.countTrivial('broadcast');
      return;
    }
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    const pieceBytes = this.defaults.pieceElems * 4;
    const desc: Descriptor = { op: 'broadcast', bytes: bytes.byteLength, codec: 'raw', root, piece: this.defaults.pieceElems };
    const timeoutMs = this.timeout(opts.timeoutMs);
    await this.timed('broadcast', bytes.byteLength, () => this.state.run((seq) => new BroadcastOp(this.state, seq, desc, bytes, pieceBytes), timeoutMs));
  }

  /** Resolves once every member has called barrier. */
  async barrier(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.memberRank();
    if (this.size === 1) return;
    const desc: Descriptor = { op: 'barrier', bytes: 0, codec: 'raw', root: -1, piece: 0 };
    await this.state.run((seq) => new BarrierOp(this.state, seq, desc), this.timeout(opts.timeoutMs));
  }

  /** Sends buf to group rank dst; resolves once the data is handed to the socket (buf may then be reused). */
  async send(buf: Float32Array | Uint8Array, dst: number, opts: { timeoutMs?: number; tag?: number } = {}): Promise<void> {
    this.checkPeer(dst, 'send dst', false);
    await this.state.p2p.send(asBytes(buf, 'send'), dst, this.tag(opts.tag), this.timeout(opts.timeoutMs));
  }

  /** Receives into `into` the matching send from group rank src (same tag, same size). */
  async recv(into: Float32Array | Uint8Array, src: number, opts: { timeoutMs?: number; tag?: number } = {}): Promise<void> {
    this.checkPeer(src, 'recv src', false);
    await this.state.p2p.recv(asBytes(into, 'recv'), src, this.tag(opts.tag), this.timeout(opts.timeoutMs));
  }

  private async ring(kind: ShardedKind, buf: Float32Array, opts: CollectiveOptions, op: 'sum' | 'avg' | 'max'): Promise<void> {
    this.memberRank();
    const codec = getCodec(opts.codec ?? 'fp32');
    const algorithm = chooseAlgorithm(checkAlgorithm(opts.algorithm ?? this.defaults.algorithm, kind), this.size);
    if (this.size === 1) {
      this.stats.countTrivial(kind);
      return;
    }
    const pieceElems = this.defaults.pieceElems;
    // the algorithm is part of the agreement: ranks that chose differently get a mismatch, not a hang
    const name = (kind === 'allReduce' || kind === 'reduceScatter' ? `${kind}:${op}` : kind) + (algorithm === 'direct' ? '@direct' : '');
    const desc: Descriptor = { op: name, bytes: buf.byteLength, codec: codec.name, root: -1, piece: pieceElems };
    const params = { kind, buf, codec, op: op === 'max' ? 'max' as const : 'sum' as const, average: op === 'avg', pieceElems };
    const timeoutMs = this.timeout(opts.timeoutMs);
    // elements x 4, whatever the codec: nccl-tests' logical size
    await this.timed(kind, buf.length * 4, () => this.state.run((seq) => (algorithm === 'direct' ? new DirectCollective(this.state, seq, desc, params) : new RingCollective(this.state, seq, desc, params)),
      timeoutMs));
  }

  /**
   * Counts one collective in the communicator's CollectiveStats, from this call to its completion.
   * `start` runs the collective (state.run announces and starts it synchronously), so the clock
   * starts just before it.
   */
  private async timed(kind: TimedCollectiveKind, bytes: number, start: () => Promise<void>): Promise<void> {
    const startedAt = this.stats.begin();
    try {
      await start();
    } catch (err) {
      this.stats.abandon();
      throw err;
    }
    this.stats.end(kind, bytes, this.size, startedAt);
  }

  private memberRank(): number {
    if (this.rank < 0) {
      throw new TrainerError(CommErrorCode.NOT_GROUP_MEMBER, `this rank is not a member of group [${this.ranks.join(',')}]`, {
        hint: 'only members may call a group\'s collectives; create groups on every rank but call them on members only',
      });
    }
    if (this.state.failure) throw this.state.failure;
    return this.rank;
  }

  private checkFloat32(buf: Float32Array, what: string): void {
    if (!(buf instanceof Float32Array)) throw badArg(`${what}: buffer must be a Float32Array`, 'convert the data to Float32Array first');
  }

  private checkPeer(r: number, what: string, selfOk: boolean): void {
    this.memberRank();
    if (!Number.isInteger(r) || r < 0 || r >= this.size || (!selfOk && r === this.rank)) {
      throw badArg(`${what} must be a group rank in [0, ${this.size})${selfOk ? '' : ' other than this rank'}, got ${r}`, 'ranks of a group are numbered 0..size-1 in the order the group was created with');
    }
  }

  private timeout(ms: number | undefined): number {
    const t = ms ?? this.defaults.timeoutMs;
    if (!(t > 0) || !Number.isFinite(t)) throw badArg(`timeoutMs must be a positive number, got ${t}`, 'omit it to use the communicator default');
    return t;
  }

  private tag(tag: number | undefined): number {
    const t = tag ?? 0;
    if (!Number.isInteger(t) || t < 0 || t >= 2 ** 31) throw badArg(`tag must be an integer in [0, 2^31), got ${t}`, 'use small non-negative integers');
    return t;
  }
}

function asBytes(buf: Float32Array | Uint8Array, what: string): Uint8Array {
  if (!(buf instanceof Float32Array) && !(buf instanceof Uint8Array)) throw badArg(`${what}: buffer must be a Float32Array or Uint8Array`, 'pass a typed array');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
