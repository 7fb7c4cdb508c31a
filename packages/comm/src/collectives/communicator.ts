import { EventEmitter } from 'node:events';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { Channel, ChannelCloseInfo } from '../transport/channel.js';
import type { ChannelServer } from '../transport/channel-server.js';
import type { Header } from '../transport/frame.js';
import { BufferPool } from './buffer-pool.js';
import { CollectiveStats, type CollectiveStatsSnapshot } from './collective-stats.js';
import type { Logger } from '../transport/logger.js';
import { GroupState, type GroupHost } from './group-state.js';
import { ProcessGroup, type GroupDefaults } from './process-group.js';
import { SendQueue, type Outgoing } from './send-queue.js';
import { MSG_BYE, peerLostError, type PeerInfo } from './wire.js';

/** "10.0.0.2:4000" -> "10.0.0.2", "[::1]:4000" -> "::1". */
function hostPart(address: string): string {
  const m = /^\[([^\]]*)\]:\d+$/.exec(address) ?? /^([^:]*):\d+$/.exec(address);
  return m ? m[1] : address;
}

/** Largest Communicator.allocBuffer (a WebAssembly memory holds at most 4 GiB; 1 GiB of fp32 leaves room for its wire slots). */
export const MAX_BUFFER_ELEMENTS = 256 * 1024 * 1024;
/** How long close() waits for queued data to reach the sockets before closing them. */
export const CLOSE_FLUSH_TIMEOUT_MS = 5_000;

interface Peer {
  info: PeerInfo;
  /** We send on this channel (the peer dialed it)... */
  channel: Channel;
  /** ...and receive on this one (we dialed it, reading straight into destinations). */
  recv: Channel;
  queue: SendQueue;
  /** The peer said goodbye: its channel closing is not a loss. */
  departed: boolean;
  lost: boolean;
}

export interface CommunicatorOptions {
  rank: number;
  world: number;
  /** One authenticated channel per other rank. */
  channels: Map<number, { send: Channel; recv: Channel }>;
  hosts: Map<number, string>;
  /** Machine names by rank (default: the host part of `hosts`). */
  machines?: readonly string[];
  server: ChannelServer | undefined;
  defaults: GroupDefaults;
  logger: Logger;
}

/**
 * This rank's view of the job: one data channel to every other rank, the process groups, and
 * the routing between them. Emits 'peer-lost' ({ rank, host, reason }) when a peer's channel
 * closes without the peer having closed its communicator; every group that contains the peer
 * fails with TRAINER_ERR_PEER_LOST (groups without it carry on).
 */
export class Communicator extends EventEmitter implements GroupHost {
  readonly rank: number;
  readonly world: number;
  readonly worldGroup: ProcessGroup;
  readonly logger: Logger;
  private readonly peers = new Map<number, Peer>();
  private readonly groups = new Map<string, GroupState>();
  private readonly groupCounts = new Map<string, number>();
  private readonly orphans = new Map<string, Array<[number, Header, Uint8Array | undefined]>>();
  readonly pool: BufferPool;
  private readonly machines: readonly string[] | undefined;
  private readonly ownHost: string | undefined;
  private readonly server: ChannelServer | undefined;
  private readonly defaults: GroupDefaults;
  /** Shared by every group of this communicator, so overlapping collectives of different groups count their time once. */
  private readonly collectives: CollectiveStats;
  private controlBytesSent = 0;
  private bytesReceived = 0;
  private closing: Promise<void> | undefined;

  constructor(opts: CommunicatorOptions) {
    super();
    this.rank = opts.rank;
    this.world = opts.world;
    this.machines = opts.machines;
    this.ownHost = opts.hosts.get(opts.rank);
    this.logger = opts.logger;
    this.server = opts.server;
    this.defaults = opts.defaults;
    this.pool = new BufferPool(opts.defaults.pieceElems * 4);
    this.collectives = new CollectiveStats();
    for (const [rank, { send, recv }] of opts.channels) {
      const peer: Peer = { info: { rank, host: opts.hosts.get(rank) ?? send.remoteAddress }, channel: send, recv, queue: new SendQueue(send), departed: false, lost: false };
      this.peers.set(rank, peer);
      for (const channel of new Set([send, recv])) {
        channel.on('message', (h: Header, payload: Uint8Array | undefined) => this.route(rank, h, payload));
        channel.setPayloadSink((h, length) => this.groups.get(typeof h.g === 'string' ? h.g : '')?.targetFor(rank, h, length));
        channel.on('close', (info: ChannelCloseInfo) => this.onPeerClosed(peer, info));
        if (!channel.isOpen) queueMicrotask(() => this.onPeerClosed(peer, { code: 1006, reason: 'closed during setup' }));
      }
    }
    this.worldGroup = this.newGroup(Array.from({ length: this.world }, (_, i) => i));
  }

  /** Payload bytes handed to the socket to one peer (its data messages, with their header estimate). */
  bytesSentTo(globalRank: number): number {
    return this.peers.get(globalRank)?.queue.bytesSent ?? 0;
  }

  /** Payload bytes handed to and received from the sockets, plus an estimate of 32 header bytes per message. */
  get stats(): { bytesSent: number; bytesReceived: number } {
    let sent = this.controlBytesSent;
    for (const p of this.peers.values()) sent += p.queue.bytesSent;
    return { bytesSent: sent, bytesReceived: this.bytesReceived };
  }

  /**
   * What the collectives of every group achieved since this communicator was created: per kind
   * (allReduce, reduceScatter, allGather, broadcast) the calls, logical and bus bytes (nccl-tests'
   * definitions) and time, and the busy time in which at least one was in flight. Subtract two
   * snapshots for an interval; `busBandwidthGBs(before, after)` gives its bus bandwidth. See
   * collective-stats.ts for what is counted and what is not (send/recv, barriers).
   */
  get collectiveStats(): CollectiveStatsSnapshot {
    return this.collectives.snapshot();
  }

  /**
   * A group of any subset of global ranks (in the order given: group rank i is ranks[i]).
   * Every rank that is a member must create the same groups in the same order; non-members may
   * create it too (their ProcessGroup has rank -1). A group's identity is its member list plus how
   * many groups with the same members were created before it.
   */
  newGroup(ranks: number[]): ProcessGroup {
    if (!Array.isArray(ranks) || ranks.length === 0 || new Set(ranks).size !== ranks.length || ranks.some((r) => !Number.isInteger(r) || r < 0 || r >= this.world)) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `newGroup: ranks must be distinct integers in [0, ${this.world}), got ${JSON.stringify(ranks)}`, {
        hint: 'pass the global ranks of the members, e.g. [0, 2]',
      });
    }
    const key = ranks.join(',');
    const count = this.groupCounts.get(key) ?? 0;
    this.groupCounts.set(key, count + 1);
    return this.group(`${key}#${count}`, ranks);
  }

  /** The machine a rank runs on: its name in the connect options' `machines`, else its data-plane host. */
  machineOf(globalRank: number): string {
    return this.machines?.[globalRank] ?? this.hostOf(globalRank);
  }

  /** The host (address without port) a rank's data plane listens on. */
  hostOf(globalRank: number): string {
    return hostPart((globalRank === this.rank ? this.ownHost : this.peers.get(globalRank)?.info.host) ?? '');
  }

  /** A sub-group of group `parentId` (hierarchical collectives): its identity is the parent's and its members'. */
  subGroup(parentId: string, ranks: number[]): ProcessGroup {
    return this.group(`${parentId}>${ranks.join(',')}`, ranks);
  }

  private group(id: string, ranks: number[]): ProcessGroup {
    const state = new GroupState(id, [...ranks], this.rank, this);
    if (state.rank >= 0) {
      this.groups.set(id, state);
      if (this.closing) state.fail(closedError(), false);
      for (const r of ranks) {
        const p = this.peers.get(r);
        if (p?.lost) state.fail(peerLostError(p.info, p.departed ? 'it closed its communicator' : 'connection lost'), false);
      }
      const waiting = this.orphans.get(id);
      if (waiting) {
        this.orphans.delete(id);
        for (const [from, h, payload] of waiting) state.onMessage(from, h, payload);
      }
    }
    return new ProcessGroup(state, this.defaults, this.collectives, this);
  }

  /**
   * A zeroed Float32Array for collectives (like NCCL's registered buffers): it lives in a
   * WebAssembly memory of its own next to wire buffers, so the codec kernels read and write it in
   * place instead of copying each piece in and out (about half the CPU of the bf16 and fp16
   * codecs, less for fp32). Any Float32Array works with every collective; this one is faster.
   * Allocate once and reuse: each is a separate WebAssembly memory. At most MAX_BUFFER_ELEMENTS.
   */
  allocBuffer(length: number): Float32Array {
    if (!Number.isInteger(length) || length < 0 || length > MAX_BUFFER_ELEMENTS) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `allocBuffer: length must be an integer in [0, ${MAX_BUFFER_ELEMENTS}], got ${length}`, {
        hint: 'split larger data into several buffers, or use a plain Float32Array',
      });
    }
    try {
      return this.pool.allocBuffer(length);
    } catch (err) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `allocBuffer: cannot allocate ${length} values: ${(err as Error).message}`, {
        hint: 'the buffer and its wire slots must fit one WebAssembly memory (2 GiB) and the machine: use a smaller buffer or pieceBytes',
        cause: err,
      });
    }
  }

  sendData(globalRank: number, item: Outgoing): void {
    const p = this.peers.get(globalRank);
    if (p) p.queue.push(item);
    else if (typeof item !== 'function') item.onWritten?.();
  }

  sendControl(globalRank: number, header: Header): void {
    const p = this.peers.get(globalRank);
    if (!p || !p.channel.isOpen) return;
    this.controlBytesSent += 64;
    p.channel.send(header);
  }

  peerInfo(globalRank: number): PeerInfo {
    return this.peers.get(globalRank)?.info ?? { rank: globalRank, host: globalRank === this.rank ? 'self' : 'unknown' };
  }

  private route(from: number, h: Header, payload: Uint8Array | undefined): void {
    this.bytesReceived += (payload?.byteLength ?? 0) + 32;
    if (h.t === MSG_BYE) {
      const p = this.peers.get(from);
      if (p) p.departed = true;
      return;
    }
    if (payload && (payload.byteOffset & 3) !== 0) {
      // A payload inside a shared read buffer can sit at any offset: realign so fp32/16-bit views work.
      const copy = new Uint8Array(payload.byteLength);
      copy.set(payload);
      payload = copy;
    }
    const g = typeof h.g === 'string' ? h.g : '';
    const group = this.groups.get(g);
    if (group) {
      group.onMessage(from, h, payload);
      return;
    }
    let list = this.orphans.get(g);
    if (!list) this.orphans.set(g, (list = []));
    list.push([from, h, payload]);
  }

  private onPeerClosed(peer: Peer, info: ChannelCloseInfo): void {
    if (peer.lost) return;
    peer.lost = true;
    peer.queue.clear();
    peer.channel.close('peer lost');
    peer.recv.close('peer lost');
    if (this.closing) return;
    const reason = peer.departed ? 'it closed its communicator' : `connection closed (code ${info.code}${info.reason ? `, ${info.reason}` : ''})`;
    if (!peer.departed) {
      this.logger.error({ rank: peer.info.rank, host: peer.info.host, reason }, 'peer lost');
      this.emit('peer-lost', { rank: peer.info.rank, host: peer.info.host, reason });
    }
    const err = peerLostError(peer.info, reason);
    for (const g of this.groups.values()) {
      if (!g.ranks.includes(peer.info.rank)) continue;
      if (peer.departed) g.memberDeparted(peer.info.rank, err);
      else g.fail(err, false);
    }
  }

  /** Says goodbye to every peer, fails pending collectives, flushes queued data, closes everything. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const p of this.peers.values()) {
        try {
          if (p.channel.isOpen) p.channel.send({ t: MSG_BYE });
        } catch {
          // already closed
        }
      }
      const err = closedError();
      for (const g of this.groups.values()) g.fail(err, false);
      const deadline = Date.now() + CLOSE_FLUSH_TIMEOUT_MS;
      const busy = (): boolean => [...this.peers.values()].some((p) => p.channel.isOpen && (p.queue.length > 0 || p.channel.bufferedAmount > 0));
      while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      // The goodbye travels on the channel we send on, after our data. That channel is closed
      // first and the other one only once it has closed (onPeerClosed closes both): closing both
      // at once could let the peer see the second socket close before it read the goodbye on the
      // first, and report a loss.
      for (const p of this.peers.values()) p.channel.close('communicator closed');
      const closeDeadline = Date.now() + CLOSE_FLUSH_TIMEOUT_MS;
      while ([...this.peers.values()].some((p) => !p.lost) && Date.now() < closeDeadline) await new Promise((r) => setTimeout(r, 5));
      for (const p of this.peers.values()) p.recv.close('communicator closed');
      await this.server?.close();
    })();
    return this.closing;
  }
}

function closedError(): TrainerError {
  return new TrainerError(CommErrorCode.CHANNEL_CLOSED, 'the communicator is closed', { hint: 'do not use a communicator after close()' });
}
