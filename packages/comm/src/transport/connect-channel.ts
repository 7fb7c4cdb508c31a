import { WebSocket, type ClientOptions } from 'ws';

type ClientOptionsCreateConnection = NonNullable<ClientOptions['createConnection']>;
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { Channel } from './channel.js';
import { DirectReader } from './direct-reader.js';
import { clientHandshake, HandshakeInbox, refuse, validateRole, validateToken } from './handshake.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_MAX_MESSAGE_BYTES, maxMessageBytes, resolveLimits, type ChannelLimits } from './limits.js';
import { silentLogger, type Logger } from './logger.js';
import { clientTlsOptions, type TlsOptions } from './tls.js';
import { setIncomingMessageLimit, zeroMask } from './ws-internals.js';

export interface ConnectChannelOptions {
  host: string;
  port: number;
  token: string;
  role: string;
  hello?: Record<string, unknown>;
  limits?: Partial<ChannelLimits>;
  timeoutMs?: number;
  logger?: Logger;
  /** send() backpressure threshold in bytes (default DEFAULT_HIGH_WATER_MARK). */
  highWaterMark?: number;
  /** Stream mode (data channels): the server must be in stream mode too. */
  stream?: boolean;
  /** Connect through this Unix domain socket (a ChannelServer.listenUnix path) instead of host:port. */
  socketPath?: string;
  /** TLS (wss) with these certificates; the server must use TLS too. Not used over a Unix socket. */
  tls?: TlsOptions;
}

/** Opens a WebSocket to a ChannelServer and runs the client side of the handshake. */
export async function connectChannel(opts: ConnectChannelOptions): Promise<Channel> {
  const token = validateToken(opts.token);
  const role = validateRole(opts.role);
  const limits = resolveLimits(opts.limits);
  const logger = opts.logger ?? silentLogger;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const remoteAddress = `${hostPart}:${opts.port}`;
  // Stream mode opens its socket itself (DirectReader), so it can reach any socket path,
  // including Linux abstract names, which ws+unix URLs cannot carry.
  const secure = opts.tls !== undefined && !opts.socketPath;
  const reader = opts.stream ? new DirectReader(opts.socketPath, secure) : undefined;
  const url = opts.socketPath && !reader ? `ws+unix:${opts.socketPath}:/` : `${secure ? 'wss' : 'ws'}://${remoteAddress}/`;
  const ws = new WebSocket(url, {
    ...(secure ? (clientTlsOptions(opts.tls!) as unknown as ClientOptions) : {}),
    ...(reader ? { createConnection: reader.createConnection as unknown as ClientOptionsCreateConnection } : {}),
    perMessageDeflate: false,
    maxPayload: maxMessageBytes(limits),
    skipUTF8Validation: true,
    generateMask: zeroMask,
    handshakeTimeout: timeoutMs,
    followRedirects: false,
  });
  setIncomingMessageLimit(ws, HANDSHAKE_MAX_MESSAGE_BYTES);
  const inbox = new HandshakeInbox(ws);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        ws.removeAllListeners('error');
        ws.removeAllListeners('unexpected-response');
        resolve();
      });
      ws.once('error', (err: Error) => {
        reject(new TrainerError(CommErrorCode.CONNECT_FAILED, `cannot connect to ${remoteAddress}: ${err.message}`, {
          hint: 'check that the peer is running and that host and port are right',
          cause: err,
          details: { host: opts.host, port: opts.port },
        }));
      });
      ws.once('unexpected-response', (_req, res) => {
        reject(new TrainerError(CommErrorCode.CONNECT_FAILED, `${remoteAddress} answered HTTP ${res.statusCode} instead of a WebSocket upgrade`, {
          hint: 'check that host and port belong to a trainer process',
        }));
        ws.terminate();
      });
    });
    const { remoteHello } = await clientHandshake(ws, inbox, { token, role, hello: opts.hello ?? {}, deadline, mode: opts.stream ? 'stream' : 'ws' });
    const early = inbox.detach();
    logger.debug({ remoteAddress, role }, 'channel connected');
    return new Channel(ws, { remoteHello, remoteAddress, limits, logger, early, highWaterMark: opts.highWaterMark, stream: opts.stream ? { isClient: true, reader } : undefined });
  } catch (err) {
    const e = err instanceof TrainerError ? err : new TrainerError(CommErrorCode.CONNECT_FAILED, String(err), { cause: err });
    logger.warn({ remoteAddress, code: e.code, err: e.message }, 'channel connect failed');
    inbox.detach();
    ws.on('error', () => {});
    if (ws.readyState === WebSocket.OPEN) refuse(ws, e);
    else ws.terminate();
    throw e;
  }
}
