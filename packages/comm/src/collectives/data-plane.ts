import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { Channel } from '../transport/channel.js';
import { connectChannel } from '../transport/connect-channel.js';
import { ChannelServer } from '../transport/channel-server.js';
import type { ChannelLimits } from '../transport/limits.js';
import { silentLogger, type Logger } from '../transport/logger.js';
import type { TlsOptions } from '../transport/tls.js';
import { checkAlgorithm, type CollectiveAlgorithm } from './algorithm.js';
import { Communicator } from './communicator.js';

export interface PeerAddress { rank: number; host: string; port: number }

/** Default time for every peer to be connected and authenticated. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
/** Default time a collective may wait for the slowest rank (a long step on another rank is normal). */
export const DEFAULT_COLLECTIVE_TIMEOUT_MS = 300_000;
/** Pipelined piece size of the ring collectives, in fp32 bytes (tuned with the allreduce benchmark). */
export const DEFAULT_PIECE_BYTES = 2 * 1024 * 1024;
/** Largest piece: wire buffers of this size live in WebAssembly memories (at most 4 GiB each). */
export const MAX_PIECE_BYTES = 256 * 1024 * 1024;
/** Per-peer bytes in the socket before the collectives queue more (keeps several pieces in flight). */
export const DEFAULT_DATA_HIGH_WATER_MARK = 1024 * 1024;
const ROLE = 'data';
const RETRY_MS = 100;

export interface DataPlaneListenOptions {
  host?: string;
  port?: number;
  /** The address peers should dial (default: host, or this machine's first external IPv4 when host is a wildcard). */
  advertiseHost?: string;
  token: string;
  limits?: Partial<ChannelLimits>;
  logger?: Logger;
  /** Per-peer send window in bytes (default DEFAULT_DATA_HIGH_WATER_MARK). */
  highWaterMark?: number;
  /**
   * How peers on the same machine connect: 'unix' (default) through a Unix domain socket next to
   * the TCP port (unixSocketPath(port)), falling back to TCP; 'tcp' always over TCP.
   */
  localTransport?: 'unix' | 'tcp';
  /** TLS for every data channel (then same-machine peers use TLS over TCP too, not the Unix socket). */
  tls?: TlsOptions;
}

/**
 * Where a DataPlane listening on TCP `port` also listens for same-machine peers: on Linux a name
 * in the abstract socket namespace (no file, nothing left behind by a killed process), elsewhere
 * a socket file in the temp directory.
 */
export function unixSocketPath(port: number): string {
  return process.platform === 'linux' ? `\0trainer-comm-${port}` : join(tmpdir(), `trainer-comm-${port}.sock`);
}

export interface DataPlaneConnectOptions {
  rank: number;
  world: number;
  peers: PeerAddress[];
  timeoutMs?: number;
  collectiveTimeoutMs?: number;
  /** Pipelined piece size in bytes, a multiple of 4 (default DEFAULT_PIECE_BYTES). Must be equal on every rank. */
  pieceBytes?: number;
  /** Reduce-scatter / all-gather algorithm (default 'auto', see chooseAlgorithm). Must be equal on every rank. */
  algorithm?: CollectiveAlgorithm;
  /**
   * The machine each rank runs on, by rank (hierarchical all-reduce groups ranks by it); default:
   * each peer's address. Must be equal on every rank.
   */
  machines?: string[];
  /**
   * Overrides the listen() option for these connections: 'tcp' suits point-to-point traffic that
   * must flow while both sides compute (pipeline stages): loopback TCP grows its socket buffers
   * to megabytes, so a send of a few hundred KiB is handed to the kernel at once, where a Unix
   * socket's ~208 KiB leave the rest waiting for the sender's next event-loop turn.
   */
  localTransport?: 'unix' | 'tcp';
}

/**
 * A worker's data-channel endpoint. listen() before rendezvous, advertise `address`, then
 * connect() with everybody's address. Every pair of ranks has two channels, one dialed by each:
 * a rank receives on the channel it dialed (client sockets can read straight into their
 * destination, see DirectReader) and sends on the one the peer dialed. Every channel is
 * authenticated with the cluster token and tagged with the dialer's rank.
 * Emits 'reject' ({ remoteAddress, code, reason }) for every refused connection (wrong token,
 * garbage, ...), which never disturbs the connected ranks.
 */
export class DataPlane extends EventEmitter {
  readonly address: { host: string; port: number };
  private readonly server: ChannelServer;
  private readonly opts: DataPlaneListenOptions;
  private readonly logger: Logger;
  private readonly accepted: Channel[] = [];
  private acceptedListener: ((ch: Channel) => void) | undefined;
  private me: { rank: number; world: number } | undefined;
  private connected = false;

  private constructor(server: ChannelServer, address: { host: string; port: number }, opts: DataPlaneListenOptions) {
    super();
    this.server = server;
    server.on('reject', (info: unknown) => this.emit('reject', info));
    this.address = address;
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    server.on('channel', (ch: Channel) => {
      if (this.acceptedListener) this.acceptedListener(ch);
      else this.accepted.push(ch);
    });
  }

  static async listen(opts: DataPlaneListenOptions): Promise<DataPlane> {
    const host = opts.host ?? '127.0.0.1';
    let plane: DataPlane | undefined;
    const server = await ChannelServer.listen({
      host, port: opts.port ?? 0, token: opts.token, role: ROLE, limits: opts.limits, logger: opts.logger,
      highWaterMark: opts.highWaterMark ?? DEFAULT_DATA_HIGH_WATER_MARK, stream: true, tls: opts.tls,
      hello: () => ({ rank: plane?.me?.rank ?? -1, world: plane?.me?.world ?? -1 }),
    });
    plane = new DataPlane(server, { host: opts.advertiseHost ?? advertisable(host), port: server.address.port }, opts);
    if ((opts.localTransport ?? 'unix') === 'unix' && !opts.tls && process.platform !== 'win32') {
      try {
        await server.listenUnix(unixSocketPath(server.address.port));
      } catch (err) {
        plane.logger.warn({ err: (err as Error).message }, 'no Unix socket for local peers; they will use TCP');
      }
    }
    return plane;
  }

  /** Connects to every peer; resolves with the Communicator once all are authenticated. */
  async connect(opts: DataPlaneConnectOptions): Promise<Communicator> {
    const { rank, world } = opts;
    validateTopology(opts);
    if (this.connected) throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, 'this DataPlane is already connected', { hint: 'call connect() once per DataPlane' });
    this.connected = true;
    this.me = { rank, world };
    const pieceBytes = opts.pieceBytes ?? DEFAULT_PIECE_BYTES;
    if (!Number.isInteger(pieceBytes) || pieceBytes < 4 || pieceBytes % 4 !== 0 || pieceBytes > MAX_PIECE_BYTES) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `pieceBytes must be a multiple of 4 in [4, ${MAX_PIECE_BYTES}], got ${pieceBytes}`, { hint: 'omit it for the default' });
    }
    const algorithm = checkAlgorithm(opts.algorithm ?? 'auto', 'DataPlane.connect');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const byRank = new Map(opts.peers.map((p) => [p.rank, p]));
    const channels = new Map<number, Channel>(); // accepted: we send on these
    const dialed = new Map<number, Channel>(); // dialed: we receive on these
    const vias: ('unix' | 'tcp')[] = []; // the socket each dialed channel runs on
    const hosts = new Map<number, string>();
    for (const p of opts.peers) hosts.set(p.rank, `${p.host}:${p.port}`);

    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const takeAccepted = (ch: Channel): void => {
      const r = ch.remoteHello.rank;
      if (typeof r !== 'number' || !Number.isInteger(r) || r === rank || r < 0 || r >= world || ch.remoteHello.world !== world || channels.has(r)) {
        this.logger.warn({ remoteAddress: ch.remoteAddress, hello: ch.remoteHello }, 'data channel with an unexpected rank or world refused');
        ch.close('unexpected rank or world');
        return;
      }
      channels.set(r, ch);
      wake?.();
    };
    for (const ch of this.accepted.splice(0)) takeAccepted(ch);
    this.acceptedListener = takeAccepted;

    try {
      const dials: Array<Promise<unknown>> = [];
      const transport = opts.localTransport ?? this.opts.localTransport ?? 'unix';
      for (let j = 0; j < world; j++) if (j !== rank) dials.push(this.dial(byRank.get(j)!, rank, world, deadline, transport).then(({ ch, via }) => { dialed.set(j, ch); vias.push(via); }));
      // Every other rank dials us too; wait until each of them has.
      const incoming = new Promise<void>((resolve, reject) => {
        const allIn = (): boolean => opts.peers.every((p) => p.rank === rank || channels.has(p.rank));
        timer = setTimeout(() => reject(this.connectTimeout(opts, channels, timeoutMs)), Math.max(0, deadline - Date.now()));
        wake = () => {
          if (allIn()) resolve();
        };
        wake();
      });
      await Promise.all([...dials, incoming]);
    } catch (err) {
      for (const ch of [...channels.values(), ...dialed.values()]) ch.close('connect failed');
      throw err;
    } finally {
      clearTimeout(timer);
      wake = undefined;
    }
    this.acceptedListener = (ch) => {
      this.logger.warn({ remoteAddress: ch.remoteAddress }, 'data channel after connect refused');
      ch.close('already connected');
    };
    const unix = vias.filter((v) => v === 'unix').length;
    this.logger.info({ rank, world, unix, tcp: vias.length - unix }, 'data plane connected');
    return new Communicator({
      rank, world, hosts, server: this.server, logger: this.logger, ...(opts.machines ? { machines: opts.machines } : {}),
      channels: new Map([...channels].map(([r, send]) => [r, { send, recv: dialed.get(r)! }])),
      defaults: { timeoutMs: opts.collectiveTimeoutMs ?? DEFAULT_COLLECTIVE_TIMEOUT_MS, pieceElems: pieceBytes / 4, algorithm },
    });
  }

  /** Closes the listening server (and any channel not yet handed to a Communicator). */
  async close(): Promise<void> {
    for (const ch of this.accepted.splice(0)) ch.close('data plane closed');
    await this.server.close();
  }

  /** Dials a peer; `via` says which socket the channel runs on. */
  private async dial(peer: PeerAddress, rank: number, world: number, deadline: number, transport: 'unix' | 'tcp'): Promise<{ ch: Channel; via: 'unix' | 'tcp' }> {
    const path = unixSocketPath(peer.port);
    let useUnix = transport === 'unix' && !this.opts.tls && isLocalHost(peer.host) && (path.startsWith('\0') || existsSync(path));
    for (;;) {
      try {
        const ch = await connectChannel({
          host: peer.host, port: peer.port, socketPath: useUnix ? path : undefined, token: this.opts.token, role: ROLE, hello: { rank, world },
          limits: this.opts.limits, logger: this.opts.logger, timeoutMs: Math.max(1, Math.min(10_000, deadline - Date.now())),
          highWaterMark: this.opts.highWaterMark ?? DEFAULT_DATA_HIGH_WATER_MARK, stream: true, tls: this.opts.tls,
        });
        const r = ch.remoteHello.rank;
        if (r !== -1 && r !== peer.rank) {
          ch.close('wrong rank');
          throw new TrainerError(CommErrorCode.CONNECT_FAILED, `${peer.host}:${peer.port} is rank ${String(r)}, expected rank ${peer.rank}`, {
            hint: 'the peer list given to connect() must map each rank to its own address',
          });
        }
        return { ch, via: useUnix ? 'unix' : 'tcp' };
      } catch (err) {
        if (useUnix && err instanceof TrainerError && err.code === CommErrorCode.CONNECT_FAILED) {
          this.logger.debug({ path, err: err.message }, 'Unix socket connect failed; using TCP');
          useUnix = false;
          continue;
        }
        const retriable = err instanceof TrainerError && (err.code === CommErrorCode.CONNECT_FAILED || err.code === CommErrorCode.HANDSHAKE_TIMEOUT) && !/expected rank/.test(err.message);
        if (!retriable || Date.now() + RETRY_MS >= deadline) {
          if (retriable) {
            throw new TrainerError(CommErrorCode.CONNECT_TIMEOUT, `rank ${rank} could not connect to rank ${peer.rank} at ${peer.host}:${peer.port}: ${(err as Error).message}`, {
              hint: 'check that the peer is running and reachable, or raise timeoutMs', cause: err, details: { missing: [peer.rank] },
            });
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private connectTimeout(opts: DataPlaneConnectOptions, channels: Map<number, Channel>, timeoutMs: number): TrainerError {
    const missing = opts.peers.filter((p) => p.rank !== opts.rank && !channels.has(p.rank));
    return new TrainerError(CommErrorCode.CONNECT_TIMEOUT,
      `rank ${opts.rank} waited ${timeoutMs} ms for ${missing.map((p) => `rank ${p.rank} (${p.host}:${p.port})`).join(', ')} to connect`, {
        hint: 'check that every rank was started with the same peer list and cluster token',
        details: { missing: missing.map((p) => p.rank) },
      });
  }
}

function validateTopology(opts: DataPlaneConnectOptions): void {
  const { rank, world, peers } = opts;
  const bad = (m: string): TrainerError => new TrainerError(CommErrorCode.INVALID_ARGUMENT, `DataPlane.connect: ${m}`, {
    hint: 'pass world >= 1, rank in [0, world), and one { rank, host, port } per rank',
  });
  if (!Number.isInteger(world) || world < 1) throw bad(`world must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw bad(`rank must be in [0, ${world}), got ${rank}`);
  if (!Array.isArray(peers)) throw bad('peers must be an array');
  const seen = new Set<number>();
  for (const p of peers) {
    if (!p || !Number.isInteger(p.rank) || p.rank < 0 || p.rank >= world || seen.has(p.rank)) throw bad(`invalid or duplicate peer rank ${JSON.stringify(p?.rank)}`);
    if (typeof p.host !== 'string' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw bad(`invalid address for rank ${p.rank}`);
    seen.add(p.rank);
  }
  for (let j = 0; j < world; j++) if (j !== rank && !seen.has(j)) throw bad(`no address for rank ${j}`);
}

/** True when `host` names this machine (loopback or one of its interface addresses). */
function isLocalHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host.startsWith('127.')) return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.address === host));
}

function advertisable(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
