import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { decodeFrame, encodeFrame, type Header } from './frame.js';
import { clientHandshake, CLOSE_CODES, HandshakeInbox, refuse, validateRole, validateToken } from './handshake.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_MAX_MESSAGE_BYTES, maxMessageBytes, resolveLimits, type ChannelLimits } from './limits.js';
import { silentLogger, type Logger } from './logger.js';
import { setIncomingMessageLimit, zeroMask } from './ws-internals.js';

/** send() returns false once this many bytes wait in the socket; 'drain' fires at half of it. */
export const DEFAULT_HIGH_WATER_MARK = 16 * 1024 * 1024;

export interface ChannelCloseInfo { code: number; reason: string }

export interface ChannelOptions {
  remoteHello: Header;
  remoteAddress: string;
  limits: ChannelLimits;
  logger: Logger;
  highWaterMark?: number;
  /** Messages that arrived right behind the handshake, delivered first. */
  early?: Buffer[];
}

/**
 * An authenticated, message-oriented connection (either end of a WebSocket).
 *
 * Events:
 * - 'message' (header, payload | undefined, frame): one decoded frame; `payload` and `frame` are
 *   views into the received bytes (no copy), `frame` can be forwarded verbatim with sendFrame.
 * - 'drain' (): bufferedAmount fell back below half the high-water mark after send() returned false.
 * - 'error' (err: TrainerError): a protocol violation by the peer; the channel then closes.
 * - 'close' ({ code, reason }): once, whoever closed it.
 */
export class Channel extends EventEmitter {
  readonly remoteHello: Record<string, unknown>;
  readonly remoteAddress: string;
  private readonly ws: WebSocket;
  private readonly limits: ChannelLimits;
  private readonly logger: Logger;
  private readonly highWaterMark: number;
  private needDrain = false;
  private closed = false;
  /** Messages received while nobody listened for 'message' (delivered to the first listener). */
  private unheard: Array<[Header, Uint8Array | undefined, Buffer]> | undefined = [];
  private readonly onSent = (err?: Error): void => {
    if (err || !this.needDrain) return;
    if (this.ws.bufferedAmount <= this.highWaterMark / 2) {
      this.needDrain = false;
      this.emit('drain');
    }
  };

  /** Wraps a socket whose handshake has completed; use ChannelServer or connectChannel instead. */
  constructor(ws: WebSocket, opts: ChannelOptions) {
    super();
    this.ws = ws;
    this.remoteHello = opts.remoteHello;
    this.remoteAddress = opts.remoteAddress;
    this.limits = opts.limits;
    this.logger = opts.logger;
    this.highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    setIncomingMessageLimit(ws, maxMessageBytes(this.limits));
    // A channel is handed out through a promise, and ws may parse several messages from one TCP
    // segment synchronously: keep them until someone listens, so none is lost.
    this.on('newListener', (event: string) => {
      if (event !== 'message' || !this.unheard) return;
      const backlog = this.unheard;
      this.unheard = undefined;
      queueMicrotask(() => {
        for (const m of backlog) if (!this.closed) this.emit('message', ...m);
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    for (const data of opts.early ?? []) this.onMessage(data, true);
    ws.on('error', (err: Error & { code?: string }) => {
      const code = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CommErrorCode.FRAME_TOO_LARGE : CommErrorCode.FRAME_INVALID;
      this.protocolError(new TrainerError(code, `channel to ${this.remoteAddress}: ${err.message}`, {
        hint: code === CommErrorCode.FRAME_TOO_LARGE ? 'raise limits.maxPayloadBytes on both ends, or send smaller messages' : 'the peer sent a malformed WebSocket frame',
        cause: err,
      }), false);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = true;
      this.emit('close', { code, reason: reason.toString('utf8') } satisfies ChannelCloseInfo);
    });
  }

  /** Bytes queued for sending but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends one message: `header` is msgpack-encoded, `payload` is copied once into the frame.
   * Returns false when bufferedAmount is above the high-water mark: wait for 'drain' before
   * sending more. Throws TRAINER_ERR_CHANNEL_CLOSED on a closed channel.
   */
  send(header: Record<string, unknown>, payload?: Uint8Array): boolean {
    return this.sendFrame(encodeFrame(header, payload));
  }

  /** Sends a frame built with encodeFrame/allocFrame, or one received on any channel, as is. */
  sendFrame(frame: Uint8Array): boolean {
    if (!this.isOpen) {
      throw new TrainerError(CommErrorCode.CHANNEL_CLOSED, `channel to ${this.remoteAddress} is closed`, {
        hint: "listen for the channel's 'close' event and stop sending",
      });
    }
    this.ws.send(frame, { binary: true }, this.onSent);
    if (this.ws.bufferedAmount > this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.close(1000, reason.slice(0, 120));
    } catch {
      this.ws.terminate();
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    let decoded;
    try {
      if (!isBinary) throw new TrainerError(CommErrorCode.FRAME_INVALID, 'text message on a binary channel', { hint: 'the peer is not a trainer comm endpoint' });
      decoded = decodeFrame(data, this.limits);
    } catch (err) {
      this.protocolError(err as TrainerError, true);
      return;
    }
    if (this.unheard) this.unheard.push([decoded.header, decoded.payload, data]);
    else this.emit('message', decoded.header, decoded.payload, data);
  }

  private protocolError(err: TrainerError, closeNow: boolean): void {
    this.logger.warn({ remoteAddress: this.remoteAddress, code: err.code, err: err.message }, 'channel protocol violation');
    if (this.listenerCount('error') > 0) this.emit('error', err);
    if (closeNow && !this.closed) {
      this.closed = true;
      try {
        this.ws.close(CLOSE_CODES[err.code] ?? 4005, err.code);
      } catch {
        this.ws.terminate();
      }
    }
  }
}

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
  const ws = new WebSocket(`ws://${remoteAddress}/`, {
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
    const { remoteHello } = await clientHandshake(ws, inbox, { token, role, hello: opts.hello ?? {}, deadline });
    const early = inbox.detach();
    logger.debug({ remoteAddress, role }, 'channel connected');
    return new Channel(ws, { remoteHello, remoteAddress, limits, logger, early, highWaterMark: opts.highWaterMark });
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
