import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TrainerError, trainerErrorFrom, type SerializedTrainerError } from '@trainer/errors';
import type { Codec } from '../codecs/codec.js';
import { CommErrorCode } from '../codes.js';
import type { CollectiveAlgorithm } from './algorithm.js';
import type { PeerAddress } from './data-plane.js';
import type { ProcessGroup } from './process-group.js';
import { shardRange } from './shard.js';

/** What the thread starts with (workerData). */
export interface ThreadStartData {
  token: string;
  /** Interface to listen on (the owner's data-plane host). */
  host: string;
  advertiseHost?: string;
  tls?: { cert: string; key: string; ca: string };
}

export type ThreadCommand =
  | { type: 'connect'; rank: number; world: number; peers: PeerAddress[]; options: { collectiveTimeoutMs?: number; algorithm?: CollectiveAlgorithm; machines?: string[] } }
  /**
   * allReduce: buffer[0, length) in place. reduceScatter: the same, this rank's shard reduced.
   * allGather: this rank's shard of `length` at its place in buffer, the gathered whole written back.
   */
  | { type: 'collective'; id: number; kind: 'allReduce' | 'reduceScatter' | 'allGather'; buffer: SharedArrayBuffer; length: number; op: 'sum' | 'avg' | 'max'; codec: Codec }
  | { type: 'close' };

export type ThreadReply =
  | { type: 'listening'; address: { host: string; port: number } }
  | { type: 'connected' }
  | { type: 'done'; id: number; stats: { bytesSent: number; bytesReceived: number } }
  | { type: 'failed'; id: number; error: SerializedTrainerError }
  | { type: 'error'; error: SerializedTrainerError }
  | { type: 'closed' };

/**
 * A data plane on its own thread (worker_threads): its own listening socket, token handshake,
 * wire format and limits (it is a DataPlane), and its own event loop, so its collectives make
 * progress while the owning thread runs kernels, which on one thread only happens when compute
 * yields (a blocked thread stops reading: the peer's TCP window closes and the link idles).
 *
 *   owner thread                         data-plane thread
 *   buf --copy--> SharedArrayBuffer  ->  allReduce in place over its sockets
 *   buf <--copy-- SharedArrayBuffer  <-  done
 *
 * start() listens; the owner exchanges the addresses over its own data plane and calls connect()
 * with the peers' thread addresses; group() is a ReduceGroup over those ranks. A failure on the
 * thread (a lost peer, a timeout) rejects the call with its TrainerError; close() ends the
 * thread, and so does the process's exit (a thread never outlives its worker).
 */
export class DataPlaneThread {
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: TrainerError) => void }>();
  private waiters: { type: ThreadReply['type']; resolve: (m: ThreadReply) => void; reject: (e: TrainerError) => void }[] = [];
  private nextId = 0;
  private free: SharedArrayBuffer[] = [];
  private dead: TrainerError | undefined;
  rank = -1;
  size = 0;
  /** What the thread's communicator had sent and received at the last completed call (Communicator.stats). */
  stats = { bytesSent: 0, bytesReceived: 0 };

  /** close() was called: calls from now on fail with TRAINER_ERR_CHANNEL_CLOSED, whichever comes first, the reply or the thread's exit. */
  private closing = false;

  private constructor(private readonly thread: Worker, readonly address: { host: string; port: number }) {}

  static async start(data: ThreadStartData): Promise<DataPlaneThread> {
    const thread = new Worker(threadScript(), { workerData: data });
    const first = await new Promise<ThreadReply>((resolve, reject) => {
      thread.once('message', resolve);
      thread.once('error', reject);
    });
    if (first.type !== 'listening') {
      await thread.terminate();
      throw first.type === 'error' ? trainerErrorFrom(first.error) : new TrainerError(CommErrorCode.DATA_PLANE_THREAD, `data-plane thread: unexpected ${first.type}`);
    }
    const t = new DataPlaneThread(thread, first.address);
    thread.on('message', (m: ThreadReply) => t.onReply(m));
    thread.on('error', (err) => t.fail(new TrainerError(CommErrorCode.DATA_PLANE_THREAD, `the data-plane thread failed: ${err.message}`, { cause: err })));
    // The thread exits once close() has asked it to: that exit is the close, not a failure.
    thread.on('exit', (code) => t.fail(t.closing ? closedError() : new TrainerError(CommErrorCode.DATA_PLANE_THREAD, `the data-plane thread exited (code ${code})`)));
    return t;
  }

  /** Connects the thread to its peers' threads (every member calls it with the same list). */
  async connect(rank: number, world: number, peers: PeerAddress[], options: Extract<ThreadCommand, { type: 'connect' }>['options'] = {}): Promise<void> {
    const connected = this.expect('connected');
    this.thread.postMessage({ type: 'connect', rank, world, peers, options } satisfies ThreadCommand);
    await connected;
    this.rank = rank;
    this.size = world;
  }

  /**
   * Connects the threads of `group`'s members: their ports are all-gathered over the group, each
   * thread listens on its owner's data-plane host (`hostOf`, by global rank). Thread rank i is
   * group rank i.
   */
  async join(group: ProcessGroup, hostOf: (globalRank: number) => string, options: Extract<ThreadCommand, { type: 'connect' }>['options'] = {}): Promise<void> {
    const ports = group.size > 1 ? await group.allGather(Float32Array.of(this.address.port), group.size) : Float32Array.of(this.address.port);
    const peers = group.ranks.map((g, i) => ({ rank: i, host: i === group.rank ? this.address.host : hostOf(g), port: ports[i] }));
    await this.connect(group.rank, group.size, peers, options);
  }

  /** In-place all-reduce over the thread's ranks (ProcessGroup.allReduce's contract). */
  async allReduce(buf: Float32Array, opts: { op?: 'sum' | 'avg' | 'max'; codec?: Codec } = {}): Promise<void> {
    if (this.size === 1 || buf.length === 0) return;
    await this.run('allReduce', buf, buf.length, opts, (shared) => buf.set(shared));
  }

  /** This rank's shard of the sum, reduced in place in buf and returned as its view (ProcessGroup.reduceScatter's contract). */
  async reduceScatter(buf: Float32Array, opts: { op?: 'sum' | 'avg'; codec?: Codec } = {}): Promise<Float32Array> {
    const { start, end } = shardRange(buf.length, Math.max(1, this.size), Math.max(0, this.rank));
    if (this.size > 1 && buf.length > 0) await this.run('reduceScatter', buf, buf.length, opts, (shared) => buf.set(shared.subarray(start, end), start));
    return buf.subarray(start, end);
  }

  /** Every rank's shard, concatenated (ProcessGroup.allGather's contract). */
  async allGather(shard: Float32Array, totalLength: number, opts: { codec?: Codec } = {}): Promise<Float32Array> {
    const out = new Float32Array(totalLength);
    const { start } = shardRange(totalLength, Math.max(1, this.size), Math.max(0, this.rank));
    out.set(shard, start);
    if (this.size > 1 && totalLength > 0) await this.run('allGather', out, totalLength, opts, (shared) => out.set(shared));
    return out;
  }

  /** One collective on the thread: `buf` copied into a shared buffer, `done` copies what came back. */
  private async run(kind: 'allReduce' | 'reduceScatter' | 'allGather', buf: Float32Array, length: number, opts: { op?: 'sum' | 'avg' | 'max'; codec?: Codec }, done: (shared: Float32Array) => void): Promise<void> {
    if (this.dead) throw this.dead;
    const buffer = this.take(length * 4);
    const shared = new Float32Array(buffer, 0, length);
    shared.set(buf.subarray(0, length));
    const id = this.nextId++;
    const finished = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.thread.postMessage({ type: 'collective', id, kind, buffer, length, op: opts.op ?? 'sum', codec: opts.codec ?? 'fp32' } satisfies ThreadCommand);
    try {
      await finished;
      done(shared);
    } finally {
      this.free.push(buffer);
    }
  }

  /** Closes the thread's connections and ends it (at most `timeoutMs`, then it is terminated). */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.dead) return;
    this.closing = true;
    const closed = this.expect('closed');
    this.thread.postMessage({ type: 'close' } satisfies ThreadCommand);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
    this.fail(closedError());
    await this.thread.terminate();
  }

  private take(bytes: number): SharedArrayBuffer {
    const i = this.free.findIndex((b) => b.byteLength >= bytes);
    return i >= 0 ? this.free.splice(i, 1)[0] : new SharedArrayBuffer(bytes);
  }

  private expect(type: ThreadReply['type']): Promise<ThreadReply> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => this.waiters.push({ type, resolve, reject }));
  }

  private onReply(m: ThreadReply): void {
    if (m.type === 'done' || m.type === 'failed') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.type === 'done') {
        if (m.stats.bytesSent >= this.stats.bytesSent) this.stats = m.stats;
        p?.resolve();
      }
      else p?.reject(trainerErrorFrom(m.error));
      return;
    }
    if (m.type === 'error') {
      const waiters = this.waiters.splice(0);
      for (const w of waiters) w.reject(trainerErrorFrom(m.error));
      return;
    }
    const i = this.waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
  }

  private fail(err: TrainerError): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

function closedError(): TrainerError {
  return new TrainerError(CommErrorCode.CHANNEL_CLOSED, 'the data-plane thread was closed');
}

/** The compiled thread next to this module; from TypeScript sources (unit tests), the one in dist/. */
function threadScript(): URL {
  const here = new URL('./data-plane-thread-main.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../../dist/collectives/data-plane-thread-main.js', import.meta.url);
}
