import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { decodeFrame, encodeFrame, encodeHeader, type Header } from './frame.js';
import { CLOSE_CODES } from './handshake.js';
import { maxMessageBytes, type ChannelLimits } from './limits.js';
import type { Logger } from './logger.js';
import type { DirectReader } from './direct-reader.js';
import { StreamLink, type PayloadSink } from './stream-link.js';
import { detachSocket, setIncomingMessageLimit } from './ws-internals.js';

/** send() returns false once this many bytes wait in the socket; 'drain' fires at half of it. */
export const DEFAULT_HIGH_WATER_MARK = 16 * 1024 * 1024;
/** First message on a stream-mode channel, from the client: the server may send after it. */
export const STREAM_READY = 'ready';

export interface ChannelCloseInfo { code: number; reason: string }

export interface ChannelOptions {
  remoteHello: Header;
  remoteAddress: string;
  limits: ChannelLimits;
  logger: Logger;
  highWaterMark?: number;
  /** Messages that arrived right behind the handshake, delivered first (ws mode). */
  early?: Buffer[];
  /** Take the socket from ws and run the StreamLink (data channels); `isClient` says which end we are. */
  stream?: { isClient: boolean; reader?: DirectReader };
}

/**
 * An authenticated, message-oriented connection (either end of a WebSocket).
 *
 * Events:
 * - 'message' (header, payload | undefined, frame | undefined): one decoded frame. `payload` is a
 *   view into received memory (no copy). In ws mode `frame` is the whole received frame.
 * - 'drain' (): bufferedAmount fell back below half the high-water mark after send() returned false.
 * - 'error' (err: TrainerError): a protocol violation by the peer; the channel then closes.
 * - 'close' ({ code, reason }): once, whoever closed it.
 *
 * Two modes share the wire format. ws mode (control channels) lets ws parse and assemble
 * messages. Stream mode (data channels) parses the same WebSocket frames itself (StreamLink), so
 * payloads are sent from the caller's memory and received into memory the consumer picks.
 */
export class Channel extends EventEmitter {
  readonly remoteHello: Record<string, unknown>;
  readonly remoteAddress: string;
  private readonly ws: WebSocket | undefined;
  private readonly link: StreamLink | undefined;
  private readonly limits: ChannelLimits;
  private readonly logger: Logger;
  private readonly highWaterMark: number;
  private needDrain = false;
  private closed = false;
  private awaitingReady: boolean;
  /** Messages received while nobody listened for 'message' (delivered to the first listener). */
  private unheard: Array<[Header, Uint8Array | undefined, Buffer | undefined]> | undefined = [];
  private readonly onSent = (err?: Error | null): void => {
    if (err || !this.needDrain) return;
    if (this.bufferedAmount <= this.highWaterMark / 2) {
      this.needDrain = false;
      this.emit('drain');
    }
  };

  /** Wraps a socket whose handshake has completed; use ChannelServer or connectChannel instead. */
  constructor(ws: WebSocket, opts: ChannelOptions) {
    super();
    this.remoteHello = opts.remoteHello;
    this.remoteAddress = opts.remoteAddress;
    this.limits = opts.limits;
    this.logger = opts.logger;
    this.highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    this.awaitingReady = opts.stream !== undefined && !opts.stream.isClient;
    // A channel is handed out through a promise, and several messages can be parsed from one TCP
    // segment synchronously: keep them until someone listens, so none is lost.
    this.on('newListener', (event: string) => {
      if (event !== 'message' || !this.unheard) return;
      const backlog = this.unheard;
      this.unheard = undefined;
      queueMicrotask(() => {
        for (const m of backlog) if (!this.closed) this.emit('message', ...m);
      });
    });
    if (opts.stream) {
      const socket = detachSocket(ws);
      if (!socket) {
        ws.terminate();
        throw new TrainerError(CommErrorCode.FRAME_INVALID, `${this.remoteAddress} sent data during the handshake`, { hint: 'the peer is not a trainer comm endpoint of this version' });
      }
      this.ws = undefined;
      this.link = new StreamLink(socket, opts.stream.isClient, this.limits, {
        onMessage: (h, p) => this.deliver(h, p, undefined),
        onClose: (code, reason) => this.onClosed(code, reason),
        onError: (err) => this.protocolError(err, false),
      });
      opts.stream.reader?.attach(this.link);
      if (opts.stream.isClient) this.link.send(encodeHeader({ t: STREAM_READY }), undefined);
      return;
    }
    this.ws = ws;
    this.link = undefined;
    setIncomingMessageLimit(ws, maxMessageBytes(this.limits));
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onWsMessage(data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      const code = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CommErrorCode.FRAME_TOO_LARGE : CommErrorCode.FRAME_INVALID;
      this.protocolError(new TrainerError(code, `channel to ${this.remoteAddress}: ${err.message}`, {
        hint: code === CommErrorCode.FRAME_TOO_LARGE ? 'raise limits.maxPayloadBytes on both ends, or send smaller messages' : 'the peer sent a malformed WebSocket frame',
        cause: err,
      }), false);
    });
    ws.on('close', (code: number, reason: Buffer) => this.onClosed(code, reason.toString('utf8')));
    for (const data of opts.early ?? []) this.onWsMessage(data, true);
  }

  /** Bytes queued for sending but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.link ? this.link.bufferedAmount : this.ws!.bufferedAmount;
  }

  get isOpen(): boolean {
    return !this.closed && (this.link ? this.link.isOpen : this.ws!.readyState === WebSocket.OPEN);
  }

  /** True for data channels: payloads are sent from and received into caller memory. */
  get isStream(): boolean {
    return this.link !== undefined;
  }

  /**
   * Sends one message: `header` is msgpack-encoded (or already is: bytes from encodeHeader or a
   * HeaderTemplate, sent as they are). In ws mode the payload is copied once into the
   * frame; in stream mode it is written from your memory, so keep it unchanged until `onWritten`
   * runs. Returns false when bufferedAmount is above the high-water mark: wait for 'drain' before
   * sending more. Throws TRAINER_ERR_CHANNEL_CLOSED on a closed channel.
   */
  send(header: Header | Uint8Array, payload?: Uint8Array, onWritten?: (err?: Error | null) => void): boolean {
    this.checkOpen();
    if (!this.link) return this.sendFrame(encodeFrame(header, payload), onWritten);
    this.link.send(header instanceof Uint8Array ? header : encodeHeader(header), payload, (err) => {
      this.onSent(err);
      onWritten?.(err);
    });
    return this.afterSend();
  }

  /** Sends a complete frame built with encodeFrame/allocFrame (or one received in ws mode), as is. */
  sendFrame(frame: Uint8Array, onWritten?: (err?: Error | null) => void): boolean {
    this.checkOpen();
    const cb = onWritten ? (err?: Error | null): void => {
      this.onSent(err);
      onWritten(err);
    } : this.onSent;
    if (this.link) {
      const { header, payload } = decodeFrame(frame, this.limits);
      this.link.send(encodeHeader(header), payload, cb);
    } else {
      this.ws!.send(frame, { binary: true }, cb);
    }
    return this.afterSend();
  }

  /** Stream mode: choose where each incoming payload is written (see PayloadSink). */
  setPayloadSink(sink: PayloadSink | undefined): void {
    if (this.link) this.link.sink = sink;
  }

  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.link) this.link.close(1000, reason);
      else this.ws!.close(1000, reason.slice(0, 120));
    } catch {
      this.terminate();
    }
  }

  private terminate(): void {
    if (this.link) this.link.terminate();
    else this.ws!.terminate();
  }

  private checkOpen(): void {
    if (!this.isOpen) {
      throw new TrainerError(CommErrorCode.CHANNEL_CLOSED, `channel to ${this.remoteAddress} is closed`, {
        hint: "listen for the channel's 'close' event and stop sending",
      });
    }
  }

  private afterSend(): boolean {
    if (this.bufferedAmount > this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private onClosed(code: number, reason: string): void {
    const wasClosed = this.closed;
    this.closed = true;
    if (this.listenerCount('close') > 0 || !wasClosed) this.emit('close', { code, reason } satisfies ChannelCloseInfo);
  }

  private onWsMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    let decoded;
    try {
      if (!isBinary) throw new TrainerError(CommErrorCode.FRAME_INVALID, 'text message on a binary channel', { hint: 'the peer is not a trainer comm endpoint' });
      decoded = decodeFrame(data, this.limits);
    } catch (err) {
      this.protocolError(err as TrainerError, true);
      return;
    }
    this.deliver(decoded.header, decoded.payload, data);
  }

  private deliver(header: Header, payload: Uint8Array | undefined, frame: Buffer | undefined): void {
    if (this.awaitingReady) {
      if (header.t !== STREAM_READY || payload) {
        this.protocolError(new TrainerError(CommErrorCode.FRAME_INVALID, 'stream channel did not start with "ready"', { hint: 'the peer is not a trainer comm endpoint of this version' }), true);
        return;
      }
      this.awaitingReady = false;
      this.emit('stream-ready');
      return;
    }
    if (this.unheard) this.unheard.push([header, payload, frame]);
    else this.emit('message', header, payload, frame);
  }

  private protocolError(err: TrainerError, closeNow: boolean): void {
    this.logger.warn({ remoteAddress: this.remoteAddress, code: err.code, err: err.message }, 'channel protocol violation');
    if (this.listenerCount('error') > 0) this.emit('error', err);
    if (closeNow && !this.closed) {
      this.closed = true;
      try {
        if (this.link) this.link.close(CLOSE_CODES[err.code] ?? 4005, err.code);
        else this.ws!.close(CLOSE_CODES[err.code] ?? 4005, err.code);
      } catch {
        this.terminate();
      }
    }
  }
}
