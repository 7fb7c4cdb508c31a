import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { Header } from '../transport/frame.js';
import { intField } from './collective-op.js';
import type { GroupState } from './group-state.js';
import { MSG_P2P, type PeerInfo } from './wire.js';

interface Waiter {
  into: Uint8Array;
  resolve: () => void;
  reject: (err: TrainerError) => void;
  timer: NodeJS.Timeout;
}

/**
 * Point-to-point send/recv within a group, matched like MPI: the k-th send from a to b with tag t
 * meets the k-th recv on b from a with tag t. A send writes straight from the caller's buffer and
 * resolves once the data is handed to the socket (eager semantics: it does not wait for the
 * recv); a message that arrives before its recv is posted waits here.
 */
export class PointToPoint {
  private readonly sendSeq = new Map<string, number>();
  private readonly recvSeq = new Map<string, number>();
  private readonly arrived = new Map<string, Uint8Array | undefined>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly sending = new Set<(err: TrainerError) => void>();

  constructor(private readonly group: GroupState) {}

  send(bytes: Uint8Array, dst: number, tag: number, timeoutMs: number): Promise<void> {
    if (this.group.failure) return Promise.reject(this.group.failure);
    const key = `${dst}/${tag}`;
    const seq = this.sendSeq.get(key) ?? 0;
    this.sendSeq.set(key, seq + 1);
    const header = { t: MSG_P2P, g: this.group.id, tag, s: seq, n: bytes.byteLength };
    return new Promise<void>((resolve, reject) => {
      const onFail = (err: TrainerError): void => {
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        this.sending.delete(onFail);
        const err = p2pTimeout('send', this.group.name, this.group.peer(dst), tag, timeoutMs);
        this.group.fail(err, true);
        reject(err);
      }, timeoutMs);
      this.sending.add(onFail);
      // Written from the caller's memory; resolving only once written lets the caller reuse it.
      this.group.send(dst, {
        header,
        payload: bytes.byteLength > 0 ? bytes : undefined,
        onWritten: () => {
          clearTimeout(timer);
          this.sending.delete(onFail);
          resolve();
        },
      });
    });
  }

  recv(into: Uint8Array, src: number, tag: number, timeoutMs: number): Promise<void> {
    if (this.group.failure) return Promise.reject(this.group.failure);
    const key = `${src}/${tag}`;
    const seq = this.recvSeq.get(key) ?? 0;
    this.recvSeq.set(key, seq + 1);
    const slot = `${key}/${seq}`;
    if (this.arrived.has(slot)) {
      const payload = this.arrived.get(slot);
      this.arrived.delete(slot);
      try {
        this.deliver(into, payload, src, tag);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(slot);
        const err = p2pTimeout('recv', this.group.name, this.group.peer(src), tag, timeoutMs);
        this.group.fail(err, true);
        reject(err);
      }, timeoutMs);
      this.waiters.set(slot, { into, resolve, reject, timer });
    });
  }

  onMessage(from: number, h: Header, payload: Uint8Array | undefined): void {
    const tag = intField(h, 'tag', 0, 2 ** 31);
    const seq = intField(h, 's', 0, Number.MAX_SAFE_INTEGER);
    const bytes = intField(h, 'n', 0, Number.MAX_SAFE_INTEGER);
    if ((payload?.byteLength ?? 0) !== bytes) throw new RangeError(`p2p message announces ${bytes} bytes but carries ${payload?.byteLength ?? 0}`);
    const slot = `${from}/${tag}/${seq}`;
    const waiter = this.waiters.get(slot);
    if (!waiter) {
      this.arrived.set(slot, payload);
      return;
    }
    this.waiters.delete(slot);
    clearTimeout(waiter.timer);
    try {
      this.deliver(waiter.into, payload, from, tag);
      waiter.resolve();
    } catch (err) {
      waiter.reject(err as TrainerError);
      throw err;
    }
  }

  private deliver(into: Uint8Array, payload: Uint8Array | undefined, src: number, tag: number): void {
    const got = payload?.byteLength ?? 0;
    if (got !== into.byteLength) {
      const me = this.group.ranks[this.group.rank];
      const them = this.group.ranks[src];
      throw new TrainerError(CommErrorCode.COLLECTIVE_MISMATCH,
        `send/recv mismatch in group ${this.group.name}: rank ${them} sent ${got} bytes (tag ${tag}), rank ${me} posted a recv of ${into.byteLength} bytes`, {
          hint: 'a send and its matching recv must have the same size',
          details: { group: this.group.name, src: them, dst: me, tag, sent: got, expected: into.byteLength },
        });
    }
    if (payload) into.set(payload);
  }

  fail(err: TrainerError): void {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
    for (const onFail of this.sending) onFail(err);
    this.sending.clear();
    this.arrived.clear();
  }
}

function p2pTimeout(what: 'send' | 'recv', group: string, peer: PeerInfo, tag: number, timeoutMs: number): TrainerError {
  return new TrainerError(CommErrorCode.COLLECTIVE_TIMEOUT,
    `${what} ${what === 'send' ? 'to' : 'from'} rank ${peer.rank} (${peer.host}) with tag ${tag} in group ${group} timed out after ${timeoutMs} ms`, {
      hint: 'the peer did not post the matching call or is stuck: check its log',
      details: { group, peer: peer.rank, host: peer.host, tag, timeoutMs, missing: [peer.rank] },
    });
}
