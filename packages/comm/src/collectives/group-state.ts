import { TrainerError, trainerErrorFrom, type SerializedTrainerError } from '@trainer/errors';
import type { Header } from '../transport/frame.js';
import type { PayloadTarget } from '../transport/stream-link.js';
import type { Logger } from '../transport/logger.js';
import type { BufferPool } from './buffer-pool.js';
import type { CollectiveOp, GroupLink } from './collective-op.js';
import { PointToPoint } from './p2p.js';
import type { Outgoing } from './send-queue.js';
import {
  descriptorFields, mismatchError, MSG_ABORT, MSG_ARRIVAL, MSG_DATA, MSG_P2P, protocolError, readDescriptor,
  sameDescriptor, timeoutError, type Descriptor, type PeerInfo,
} from './wire.js';

/** What a group needs from its communicator. */
export interface GroupHost {
  readonly logger: Logger;
  readonly pool: BufferPool;
  /** Queue a message to a global rank (flow-controlled, in order). */
  sendData(globalRank: number, item: Outgoing): void;
  /** Send a small control frame to a global rank now, ahead of queued data. */
  sendControl(globalRank: number, header: Header): void;
  peerInfo(globalRank: number): PeerInfo;
}

interface Early {
  arrivals: Map<number, Descriptor>;
  data: Array<[number, Header, Uint8Array | undefined]>;
}

interface Running {
  op: CollectiveOp;
  resolve: () => void;
  reject: (err: TrainerError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The state of one process group on this rank: the sequence counter, the collectives in flight
 * (several may overlap, matched by sequence number), messages that arrived before this rank
 * reached the same collective, and the failure that ends the group. After a mismatch, a timeout
 * or a lost peer the group is unusable: every pending and later call rejects with that error,
 * and an abort message carries it to every other member so nobody waits forever.
 */
export class GroupState implements GroupLink {
  readonly id: string;
  readonly ranks: readonly number[];
  readonly rank: number;
  readonly size: number;
  readonly name: string;
  failure: TrainerError | undefined;
  /** Set when a member closed its communicator: new collectives cannot complete. */
  private departed: TrainerError | undefined;
  readonly p2p: PointToPoint;
  private nextSeq = 0;
  private readonly running = new Map<number, Running>();
  private readonly early = new Map<number, Early>();
  private readonly index = new Map<number, number>();

  constructor(id: string, ranks: readonly number[], myGlobalRank: number, readonly host: GroupHost) {
    this.id = id;
    this.ranks = ranks;
    this.size = ranks.length;
    ranks.forEach((g, i) => this.index.set(g, i));
    this.rank = this.index.get(myGlobalRank) ?? -1;
    this.name = `[${ranks.join(',')}]`;
    this.p2p = new PointToPoint(this);
  }

  globalRank(groupRank: number): number {
    return this.ranks[groupRank];
  }

  groupRankOf(globalRank: number): number | undefined {
    return this.index.get(globalRank);
  }

  get pool(): BufferPool {
    return this.host.pool;
  }

  send(groupRank: number, item: Outgoing): void {
    this.host.sendData(this.ranks[groupRank], item);
  }

  peer(groupRank: number): PeerInfo {
    return this.host.peerInfo(this.ranks[groupRank]);
  }

  /** Runs one collective: announce, start, replay early messages, settle on completion or failure. */
  run(make: (seq: number) => CollectiveOp, timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.departed) return Promise.reject(this.departed);
    const op = make(this.nextSeq++);
    op.onProgress = () => this.settleIfComplete(op);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.onTimeout(op, timeoutMs), timeoutMs);
      this.running.set(op.seq, { op, resolve, reject, timer });
      const arrival = { t: MSG_ARRIVAL, g: this.id, s: op.seq, ...descriptorFields(op.desc) };
      for (let i = 0; i < this.size; i++) if (i !== this.rank) this.host.sendControl(this.ranks[i], arrival);
      try {
        op.start();
        const early = this.early.get(op.seq);
        if (early) {
          this.early.delete(op.seq);
          for (const [from, desc] of early.arrivals) this.arrive(op, from, desc);
          for (const [from, h, payload] of early.data) {
            if (this.failure) this.host.pool.release(payload);
            else this.data(op, from, h, payload);
          }
        }
      } catch (err) {
        this.fail(err instanceof TrainerError ? err : protocolError(this.name, this.ranks[this.rank], String(err)), true);
        return;
      }
      this.settleIfComplete(op);
    });
  }

  /** Where an incoming data payload should be written (stream channels), or undefined to allocate. */
  targetFor(fromGlobal: number, h: Header, length: number): Uint8Array | PayloadTarget | undefined {
    if (this.failure || h.t !== MSG_DATA) return undefined;
    const from = this.index.get(fromGlobal);
    if (from === undefined || typeof h.s !== 'number') return undefined;
    const running = this.running.get(h.s);
    if (!running) {
      // A piece of a collective this rank has not reached yet (a faster neighbour already started
      // it): land it in a pool buffer, which the collective will take over without a copy.
      return Number.isInteger(h.s) && h.s >= this.nextSeq && length <= this.host.pool.slotBytes ? this.host.pool.acquire(length) : undefined;
    }
    if (!sameDescriptor(readDescriptor(h), running.op.desc)) return undefined;
    try {
      return running.op.target(from, h, length);
    } catch {
      return undefined; // onData reports the problem
    }
  }

  /** Routes one message of this group from a global rank. */
  onMessage(fromGlobal: number, h: Header, payload: Uint8Array | undefined): void {
    const from = this.index.get(fromGlobal);
    if (from === undefined || from === this.rank) {
      this.host.logger.warn({ group: this.name, from: fromGlobal }, 'message for a group the sender is not in; dropped');
      this.host.pool.release(payload);
      return;
    }
    if (h.t === MSG_ABORT) {
      this.onAbort(fromGlobal, h);
      return;
    }
    if (this.failure) {
      this.host.pool.release(payload);
      return;
    }
    if (h.t === MSG_P2P) {
      this.guard(fromGlobal, () => this.p2p.onMessage(from, h, payload));
      return;
    }
    const seq = h.s;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) {
      this.host.pool.release(payload);
      this.fail(protocolError(this.name, fromGlobal, `bad sequence number ${JSON.stringify(seq)}`), true);
      return;
    }
    const running = this.running.get(seq);
    if (!running) {
      if (seq < this.nextSeq) {
        this.host.pool.release(payload); // a finished collective cannot receive more; already failed ones are ignored
        return;
      }
      let early = this.early.get(seq);
      if (!early) this.early.set(seq, (early = { arrivals: new Map(), data: [] }));
      if (h.t === MSG_ARRIVAL) early.arrivals.set(from, readDescriptor(h));
      else if (h.t === MSG_DATA) early.data.push([from, h, payload]);
      return;
    }
    const op = running.op;
    if (h.t === MSG_ARRIVAL) this.arrive(op, from, readDescriptor(h));
    else if (h.t === MSG_DATA) this.guard(fromGlobal, () => this.data(op, from, h, payload));
    this.settleIfComplete(op);
  }

  private guard(fromGlobal: number, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err instanceof TrainerError ? err : protocolError(this.name, fromGlobal, err instanceof Error ? err.message : String(err)), true);
    }
  }

  private arrive(op: CollectiveOp, from: number, desc: Descriptor): void {
    if (this.failure) return;
    op.arrivals.set(from, desc);
    if (!sameDescriptor(desc, op.desc)) this.fail(this.mismatch(op, from, desc), true);
  }

  private data(op: CollectiveOp, from: number, h: Header, payload: Uint8Array | undefined): void {
    const desc = readDescriptor(h);
    if (!sameDescriptor(desc, op.desc)) {
      this.fail(this.mismatch(op, from, desc), true);
      return;
    }
    op.onData(from, h, payload);
  }

  private mismatch(op: CollectiveOp, from: number, desc: Descriptor): TrainerError {
    const calls = [...op.arrivals].map(([r, d]) => ({ rank: this.ranks[r], desc: d }));
    if (!op.arrivals.has(from) || !sameDescriptor(op.arrivals.get(from)!, desc)) calls.push({ rank: this.ranks[from], desc });
    return mismatchError(this.name, op.seq, calls.sort((a, b) => a.rank - b.rank));
  }

  private settleIfComplete(op: CollectiveOp): void {
    if (this.failure || !op.complete) return;
    const running = this.running.get(op.seq);
    if (!running) return;
    clearTimeout(running.timer);
    this.running.delete(op.seq);
    running.resolve();
  }

  private onTimeout(op: CollectiveOp, timeoutMs: number): void {
    if (!this.running.has(op.seq)) return;
    const missing: PeerInfo[] = [];
    for (let i = 0; i < this.size; i++) if (!op.arrivals.has(i)) missing.push(this.peer(i));
    const stalled = missing.length > 0 ? [] : op.upstream().map((i) => this.peer(i));
    this.fail(timeoutError(this.name, op.seq, op.desc, timeoutMs, missing, stalled), true);
  }

  private onAbort(fromGlobal: number, h: Header): void {
    if (this.failure) return;
    const e = h.err as SerializedTrainerError | undefined;
    const valid = e && typeof e.code === 'string' && /^TRAINER_ERR_[A-Z0-9_]+$/.test(e.code) && typeof e.message === 'string';
    const err = valid
      ? trainerErrorFrom({ code: e.code, message: e.message, hint: e.hint, details: { ...(e.details ?? {}), abortedBy: fromGlobal } })
      : protocolError(this.name, fromGlobal, 'malformed abort');
    this.host.logger.warn({ group: this.name, from: fromGlobal, code: err.code }, 'group aborted by a peer');
    this.fail(err, false);
  }

  /**
   * A member closed its communicator on purpose. Collectives that already have everything they
   * need from it finish normally (it may simply have finished first); any that still wait for its
   * arrival or data, and every later call, fail with `err`.
   */
  memberDeparted(globalRank: number, err: TrainerError): void {
    const member = this.index.get(globalRank);
    if (member === undefined || this.failure) return;
    this.departed ??= err;
    for (const { op } of this.running.values()) {
      if (!op.arrivals.has(member) || (op.received < op.expected && op.upstream().includes(member))) {
        this.fail(err, false);
        return;
      }
    }
  }

  /** Ends the group: rejects everything pending and (when we found the problem) tells the others. */
  fail(err: TrainerError, tellOthers: boolean): void {
    if (this.failure) return;
    this.failure = err;
    const level = this.running.size > 0 || tellOthers ? 'error' : 'debug';
    this.host.logger[level]({ group: this.name, code: err.code, err: err.message }, 'process group failed');
    for (const r of this.running.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.running.clear();
    for (const e of this.early.values()) for (const [, , payload] of e.data) this.host.pool.release(payload);
    this.early.clear();
    this.p2p.fail(err);
    if (!tellOthers) return;
    const abort = { t: MSG_ABORT, g: this.id, err: err.toJSON() };
    for (let i = 0; i < this.size; i++) if (i !== this.rank) this.host.sendControl(this.ranks[i], abort);
  }

}
