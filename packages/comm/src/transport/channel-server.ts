import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { Channel } from './channel.js';
import { HandshakeInbox, refuse, serverHandshake, validateRole, validateToken } from './handshake.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_MAX_MESSAGE_BYTES, maxMessageBytes, resolveLimits, type ChannelLimits } from './limits.js';
import { silentLogger, type Logger } from './logger.js';
import { serverTlsOptions, type TlsOptions } from './tls.js';
import { setIncomingMessageLimit } from './ws-internals.js';

export interface ChannelServerOptions {
  host?: string;
  /** 0 (the default) picks a free port; read it back from `address`. */
  port?: number;
  token: string;
  /** e.g. 'control' or 'data': a client that asks for another role is refused. */
  role: string;
  /** Sent to every client in the handshake; a function is called per connection. */
  hello?: Record<string, unknown> | (() => Record<string, unknown>);
  limits?: Partial<ChannelLimits>;
  handshakeTimeoutMs?: number;
  logger?: Logger;
  /** Per-channel send() backpressure threshold in bytes (default DEFAULT_HIGH_WATER_MARK). */
  highWaterMark?: number;
  /** Stream mode (data channels): clients must ask for it too. */
  stream?: boolean;
  /**
   * Serves plain HTTP requests (not WebSocket upgrades) on the same port, e.g. a dashboard.
   * Without it such requests get 426 Upgrade Required. The handler does its own authentication.
   */
  onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** TLS (wss): clients must present a certificate from the same CA (a Unix socket listener stays plain). */
  tls?: TlsOptions;
}

export interface ChannelRejectInfo { remoteAddress: string; code: string; reason: string }

/**
 * Accepts authenticated channels of one role.
 *
 * Events: 'channel' (ch: Channel) after a successful handshake; 'reject' ({ remoteAddress, code,
 * reason }) for every connection that was refused or dropped before it became a channel
 * (wrong or missing token, wrong role, garbage, too slow, not a WebSocket). A refused
 * connection never affects the server or other connections.
 */
export class ChannelServer extends EventEmitter {
  readonly address: { host: string; port: number };
  private readonly http: Server;
  private unixHttp: Server | undefined;
  private unixPath: string | undefined;
  private readonly wss: WebSocketServer;
  private readonly pending = new Set<WebSocket>();
  private readonly channels = new Set<Channel>();
  private closing: Promise<void> | undefined;

  private constructor(http: Server, wss: WebSocketServer, address: { host: string; port: number }) {
    super();
    this.http = http;
    this.wss = wss;
    this.address = address;
  }

  static async listen(opts: ChannelServerOptions): Promise<ChannelServer> {
    const token = validateToken(opts.token);
    const role = validateRole(opts.role);
    const limits = resolveLimits(opts.limits);
    const logger = opts.logger ?? silentLogger;
    const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `port must be an integer in [0, 65535], got ${String(port)}`, { hint: 'use 0 for a free port' });
    }
    const handler = opts.onHttpRequest ?? ((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('trainer comm endpoint: WebSocket upgrade required\n');
    });
    const http: Server = opts.tls ? createTlsServer(serverTlsOptions(opts.tls), handler) : createServer(handler);
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: maxMessageBytes(limits),
      skipUTF8Validation: true,
      clientTracking: false,
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err) => reject(new TrainerError(CommErrorCode.CONNECT_FAILED, `cannot listen on ${host}:${port}: ${err.message}`, {
        hint: 'pick another port (0 = any free port) or stop the process holding it', cause: err,
      })));
      http.listen(port, host, () => resolve());
    });
    const info = http.address() as AddressInfo;
    const server = new ChannelServer(http, wss, { host, port: info.port });
    http.on('error', (err) => logger.error({ err: err.message }, 'channel server error'));
    http.on('clientError', (err: Error, socket: Duplex) => server.onClientError(err, socket));
    // A client without a certificate from the CA (or not speaking TLS at all) never reaches the handshake.
    http.on('tlsClientError', (err: Error, socket: Duplex) => {
      server.reject(remoteOf(socket), CommErrorCode.AUTH_FAILED, `TLS handshake failed: ${err.message}`, logger);
      socket.destroy();
    });
    wss.on('wsClientError', (err: Error, socket: Duplex) => {
      server.reject(remoteOf(socket), CommErrorCode.FRAME_INVALID, `invalid WebSocket upgrade: ${err.message}`, logger);
      socket.destroy();
    });
    server.onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (server.closing) {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        void server.accept(ws, remoteOf(socket), { token, role, hello: opts.hello, limits, logger, handshakeTimeoutMs, highWaterMark: opts.highWaterMark, stream: opts.stream === true });
      });
    };
    server.onClientError = (err: Error, socket: Duplex) => {
      server.reject(remoteOf(socket), CommErrorCode.FRAME_INVALID, `not an HTTP/WebSocket client: ${err.message}`, logger);
      socket.destroy();
    };
    http.on('upgrade', server.onUpgrade);
    logger.info({ host, port: info.port, role }, 'channel server listening');
    return server;
  }

  private onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void = () => {};
  private onClientError: (err: Error, socket: Duplex) => void = () => {};

  /**
   * Also accepts connections on a Unix domain socket at `path` (same handshake, same channels).
   * Peers on the same machine reach us without the TCP stack, which roughly halves the
   * kernel's cost per byte on loopback. Replaces a stale socket file left at `path`; a path
   * starting with NUL is a Linux abstract socket name (no file at all).
   */
  async listenUnix(path: string): Promise<void> {
    if (this.unixHttp) throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, 'this server already listens on a Unix socket', { hint: 'call listenUnix once' });
    const http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('trainer comm endpoint: WebSocket upgrade required\n');
    });
    http.on('upgrade', this.onUpgrade);
    http.on('clientError', this.onClientError);
    if (!path.startsWith('\0')) {
      try {
        unlinkSync(path); // a stale file from a process that died
      } catch {
        // nothing stale to remove
      }
    }
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err) => reject(new TrainerError(CommErrorCode.CONNECT_FAILED, `cannot listen on ${path}: ${err.message}`, { hint: 'check that the directory is writable', cause: err })));
      http.listen(path, () => resolve());
    });
    this.unixHttp = http;
    this.unixPath = path;
    process.on('exit', this.unlinkUnix); // a killed process cannot, but an exiting one can
  }

  private readonly unlinkUnix = (): void => {
    if (!this.unixPath || this.unixPath.startsWith('\0')) return; // abstract names leave no file
    try {
      unlinkSync(this.unixPath);
    } catch {
      // already gone
    }
  };

  private async accept(ws: WebSocket, remoteAddress: string, o: {
    token: string; role: string; hello: ChannelServerOptions['hello']; limits: ChannelLimits; logger: Logger; handshakeTimeoutMs: number; highWaterMark: number | undefined; stream: boolean;
  }): Promise<void> {
    this.pending.add(ws);
    setIncomingMessageLimit(ws, HANDSHAKE_MAX_MESSAGE_BYTES);
    const inbox = new HandshakeInbox(ws);
    try {
      const hello = typeof o.hello === 'function' ? o.hello() : (o.hello ?? {});
      const deadline = Date.now() + o.handshakeTimeoutMs;
      const { remoteHello } = await serverHandshake(ws, inbox, { token: o.token, role: o.role, hello, deadline, mode: o.stream ? 'stream' : 'ws' });
      const early = inbox.detach();
      if (this.closing) {
        this.pending.delete(ws);
        ws.terminate();
        return;
      }
      const ch = new Channel(ws, { remoteHello, remoteAddress, limits: o.limits, logger: o.logger, early, highWaterMark: o.highWaterMark, stream: o.stream ? { isClient: false } : undefined });
      if (o.stream) await waitForReady(ch, deadline);
      this.pending.delete(ws);
      this.channels.add(ch);
      ch.once('close', () => this.channels.delete(ch));
      o.logger.debug({ remoteAddress, role: o.role }, 'channel accepted');
      this.emit('channel', ch);
    } catch (err) {
      this.pending.delete(ws);
      inbox.detach();
      ws.on('error', () => {});
      const e = err instanceof TrainerError ? err : new TrainerError(CommErrorCode.FRAME_INVALID, String(err), { cause: err });
      refuse(ws, e);
      // A refused peer gets a short grace period to read the reason, then the socket goes.
      setTimeout(() => ws.terminate(), 1000).unref();
      this.reject(remoteAddress, e.code, e.message, o.logger);
    }
  }

  private reject(remoteAddress: string, code: string, reason: string, logger: Logger): void {
    logger.warn({ remoteAddress, code, reason }, 'connection refused');
    this.emit('reject', { remoteAddress, code, reason } satisfies ChannelRejectInfo);
  }

  /** Stops listening and closes every channel and pending connection. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const ws of this.pending) ws.terminate();
      for (const ch of this.channels) ch.close('server closing');
      this.wss.close();
      let open = this.unixHttp ? 2 : 1;
      const closed = (): void => {
        if (--open === 0) resolve();
      };
      this.http.close(closed);
      this.http.closeAllConnections();
      if (this.unixHttp) {
        this.unixHttp.close(closed);
        this.unixHttp.closeAllConnections();
        this.unlinkUnix();
        process.off('exit', this.unlinkUnix);
      }
    });
    return this.closing;
  }
}

/** A stream-mode server may send only after the client's "ready" (so ws never sees data frames). */
function waitForReady(ch: Channel, deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ch.close('no ready');
      reject(new TrainerError(CommErrorCode.HANDSHAKE_TIMEOUT, 'stream channel: no "ready" from the client', { hint: 'the peer is not a trainer comm endpoint of this version' }));
    }, Math.max(0, deadline - Date.now()));
    ch.once('stream-ready', () => {
      clearTimeout(timer);
      resolve();
    });
    ch.once('close', () => {
      clearTimeout(timer);
      reject(new TrainerError(CommErrorCode.FRAME_INVALID, 'stream channel closed before "ready"', { hint: 'the peer is not a trainer comm endpoint of this version' }));
    });
  });
}

function remoteOf(socket: Duplex): string {
  const s = socket as Duplex & { remoteAddress?: string; remotePort?: number };
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort ?? '?'}` : 'unix-socket';
}
