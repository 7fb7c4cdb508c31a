import type { Socket } from 'node:net';
import type { ReadTarget } from './direct-reader.js';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { align4, decodeHeader, type Header } from './frame.js';
import type { ChannelLimits } from './limits.js';

/** A payload destination that also wants to hear how far it has been filled (to work on it while it is in cache). */
export interface PayloadTarget {
  buffer: Uint8Array;
  /** Called after each read with the number of payload bytes received so far. */
  onProgress(filled: number): void;
}

/** Where a message's payload should be written: a caller-chosen buffer of exactly `length` bytes, or undefined to allocate. */
export type PayloadSink = (header: Header, length: number) => Uint8Array | PayloadTarget | undefined;

export interface StreamLinkHandlers {
  onMessage(header: Header, payload: Uint8Array | undefined): void;
  onClose(code: number, reason: string): void;
  onError(err: TrainerError): void;
}

/** Below this many payload bytes still to come, read into the scratch buffer (it may hold the next header too). */
const MIN_DIRECT_READ = 16 * 1024;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const enum State { WsHead, WsExt, Control, Prefix, Header, Payload }

/**
 * The data-plane side of a channel after its handshake: the same wire format (one binary
 * WebSocket message per frame, [u32 header length][msgpack header][pad][payload]), written and
 * parsed here instead of by ws so that
 * - a payload is sent straight from the caller's memory (header and payload are two writes in
 *   one corked batch, never concatenated), and
 * - a payload is received straight into a buffer the consumer picks from the header (a
 *   PayloadSink), e.g. the slice of the all-gather output it belongs to, instead of being
 *   assembled in a fresh buffer and copied again.
 * Messages are never fragmented; client frames carry the mask bit with an all-zero key.
 */
export class StreamLink implements ReadTarget {
  private state = State.WsHead;
  private need = 2;
  private carry: Buffer = Buffer.allocUnsafe(256);
  private carryLen = 0;
  private opcode = 0;
  private frameLen = 0;
  private maskLen = 0;
  private headerLen = 0;
  private header: Header = {};
  private target: Uint8Array | undefined;
  private progress: ((filled: number) => void) | undefined;
  private filled = 0;
  private closeSent = false;
  private closed = false;
  /** The last buffer handed out by nextReadBuffer was the payload target itself. */
  private readingDirect = false;
  sink: PayloadSink | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly isClient: boolean,
    private readonly limits: ChannelLimits,
    private readonly handlers: StreamLinkHandlers,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.finish(1006, 'connection lost'));
    socket.on('error', () => {}); // 'close' follows
    socket.on('end', () => socket.end());
    socket.resume();
  }

  /** Direct reads: the rest of the current payload if one is being received, else the scratch buffer. */
  nextReadBuffer(scratch: Buffer): Uint8Array {
    if (this.state === State.Payload && !this.closed && this.frameLen - this.filled >= MIN_DIRECT_READ) {
      this.readingDirect = true;
      return this.target!.subarray(this.filled, this.frameLen);
    }
    this.readingDirect = false;
    return scratch;
  }

  onDirectRead(n: number, buf: Uint8Array): void {
    if (this.closed) return;
    if (this.readingDirect) {
      this.filled += n; // the kernel wrote these bytes in place
      this.progress?.(this.filled);
      if (this.filled === this.frameLen) this.deliver();
      return;
    }
    this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  get isOpen(): boolean {
    return !this.closed && !this.closeSent && !this.socket.destroyed;
  }

  /** Writes one message: WebSocket header + our prefix/header/padding, then the payload as is. */
  send(headerBytes: Uint8Array, payload: Uint8Array | undefined, cb?: (err?: Error | null) => void): boolean {
    const payloadOffset = align4(4 + headerBytes.length);
    const payloadLength = payload ? payload.byteLength : 0;
    const frameLen = payloadOffset + payloadLength;
    const wsLen = wsHeaderLength(frameLen, this.isClient);
    const head = Buffer.allocUnsafe(wsLen + payloadOffset);
    writeWsHeader(head, OP_BINARY, frameLen, this.isClient);
    head.writeUInt32LE(headerBytes.length, wsLen);
    head.set(headerBytes, wsLen + 4);
    head.fill(0, wsLen + 4 + headerBytes.length);
    if (payloadLength === 0) return this.socket.write(head, cb);
    this.socket.cork();
    this.socket.write(head);
    const ok = this.socket.write(payload!, cb);
    this.socket.uncork();
    return ok;
  }

  close(code: number, reason: string): void {
    if (this.closeSent || this.closed) return;
    this.closeSent = true;
    const r = Buffer.from(reason.slice(0, 120), 'utf8');
    const wsLen = wsHeaderLength(2 + r.length, this.isClient);
    const f = Buffer.allocUnsafe(wsLen + 2 + r.length);
    writeWsHeader(f, OP_CLOSE, 2 + r.length, this.isClient);
    f.writeUInt16BE(code, wsLen);
    f.set(r, wsLen + 2);
    this.socket.end(f);
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  terminate(): void {
    this.socket.destroy();
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.onClose(code, reason);
  }

  private fail(code: string, message: string): void {
    if (this.closed) return;
    this.handlers.onError(new TrainerError(code, message, {
      hint: code === CommErrorCode.FRAME_TOO_LARGE ? 'raise limits.maxPayloadBytes on both ends, or send smaller messages' : 'the peer sent a malformed frame',
    }));
    this.close(code === CommErrorCode.FRAME_TOO_LARGE ? 1009 : 1002, code);
    this.finish(code === CommErrorCode.FRAME_TOO_LARGE ? 1009 : 1002, code);
    this.socket.removeAllListeners('data');
  }

  private onData(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end && !this.closed) {
      if (this.state === State.Payload) {
        const n = Math.min(end - pos, this.frameLen - this.filled);
        this.target!.set(chunk.subarray(pos, pos + n), this.filled);
        this.filled += n;
        pos += n;
        this.progress?.(this.filled);
        if (this.filled === this.frameLen) this.deliver();
        continue;
      }
      let part: Buffer;
      if (this.carryLen === 0 && end - pos >= this.need) {
        part = chunk.subarray(pos, pos + this.need);
        pos += this.need;
      } else {
        if (this.carry.length < this.need) this.carry = Buffer.allocUnsafe(this.need);
        const n = Math.min(this.need - this.carryLen, end - pos);
        chunk.copy(this.carry, this.carryLen, pos, pos + n);
        this.carryLen += n;
        pos += n;
        if (this.carryLen < this.need) return;
        part = this.carry.subarray(0, this.need);
        this.carryLen = 0;
      }
      this.onPart(part);
    }
  }

  private onPart(part: Buffer): void {
    switch (this.state) {
      case State.WsHead: {
        const fin = (part[0] & 0x80) !== 0;
        this.opcode = part[0] & 0x0f;
        const masked = (part[1] & 0x80) !== 0;
        const len7 = part[1] & 0x7f;
        if ((part[0] & 0x70) !== 0 || !fin || (this.opcode !== OP_BINARY && this.opcode < OP_CLOSE) || this.opcode > OP_PONG) {
          this.fail(CommErrorCode.FRAME_INVALID, `unsupported WebSocket frame (opcode ${this.opcode}, fin ${fin})`);
          return;
        }
        this.maskLen = masked ? 4 : 0;
        const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
        this.frameLen = len7;
        this.need = ext + this.maskLen;
        this.state = State.WsExt;
        if (this.need === 0) this.afterWsHeader();
        return;
      }
      case State.WsExt: {
        const ext = this.need - this.maskLen;
        if (ext === 2) this.frameLen = part.readUInt16BE(0);
        else if (ext === 8) {
          const hi = part.readUInt32BE(0);
          if (hi > 0x1fffff) return this.fail(CommErrorCode.FRAME_TOO_LARGE, 'WebSocket frame length over 2^53');
          this.frameLen = hi * 2 ** 32 + part.readUInt32BE(4);
        }
        if (this.maskLen && (part[ext] | part[ext + 1] | part[ext + 2] | part[ext + 3]) !== 0) {
          return this.fail(CommErrorCode.FRAME_INVALID, 'masked data frames must use the all-zero key on data channels');
        }
        this.afterWsHeader();
        return;
      }
      case State.Control:
        this.onControl(part);
        return;
      case State.Prefix: {
        this.headerLen = part.readUInt32LE(0);
        if (this.headerLen > this.limits.maxHeaderBytes) return this.fail(CommErrorCode.FRAME_TOO_LARGE, `frame header of ${this.headerLen} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`);
        const payloadOffset = align4(4 + this.headerLen);
        if (this.headerLen === 0 || payloadOffset > this.frameLen) return this.fail(CommErrorCode.FRAME_INVALID, `invalid frame: header length ${this.headerLen} in a ${this.frameLen}-byte frame`);
        if (this.frameLen - payloadOffset > this.limits.maxPayloadBytes) {
          return this.fail(CommErrorCode.FRAME_TOO_LARGE, `frame payload of ${this.frameLen - payloadOffset} bytes exceeds the limit of ${this.limits.maxPayloadBytes} bytes`);
        }
        this.need = payloadOffset - 4;
        this.state = State.Header;
        return;
      }
      case State.Header: {
        try {
          // copied: with direct reads `part` may live in a scratch buffer that the next read reuses
          this.header = decodeHeader(Uint8Array.prototype.slice.call(part, 0, this.headerLen));
        } catch (err) {
          return this.fail(CommErrorCode.FRAME_INVALID, (err as Error).message);
        }
        const length = this.frameLen - align4(4 + this.headerLen);
        if (length === 0) {
          this.target = undefined;
          this.frameLen = 0;
          this.deliver();
          return;
        }
        const chosen = this.sink?.(this.header, length);
        const buffer = chosen instanceof Uint8Array ? chosen : chosen?.buffer;
        const ok = buffer !== undefined && buffer.byteLength === length;
        this.target = ok ? buffer : Buffer.allocUnsafe(length);
        this.progress = ok && !(chosen instanceof Uint8Array) ? chosen!.onProgress : undefined;
        this.frameLen = length;
        this.filled = 0;
        this.state = State.Payload;
        return;
      }
      default:
        return;
    }
  }

  private afterWsHeader(): void {
    if (this.opcode !== OP_BINARY) {
      if (this.frameLen > 125) return this.fail(CommErrorCode.FRAME_INVALID, 'control frame longer than 125 bytes');
      this.need = this.frameLen;
      this.state = State.Control;
      if (this.need === 0) this.onControl(Buffer.alloc(0));
      return;
    }
    if (this.frameLen > 4 + this.limits.maxHeaderBytes + 3 + this.limits.maxPayloadBytes) {
      return this.fail(CommErrorCode.FRAME_TOO_LARGE, `message of ${this.frameLen} bytes exceeds the channel limits`);
    }
    if (this.frameLen < 4) return this.fail(CommErrorCode.FRAME_INVALID, `invalid frame: ${this.frameLen} bytes is shorter than the 4-byte prefix`);
    this.need = 4;
    this.state = State.Prefix;
  }

  private onControl(payload: Buffer): void {
    this.state = State.WsHead;
    this.need = 2;
    if (this.opcode === OP_PING) {
      const wsLen = wsHeaderLength(payload.length, this.isClient);
      const f = Buffer.allocUnsafe(wsLen + payload.length);
      writeWsHeader(f, OP_PONG, payload.length, this.isClient);
      payload.copy(f, wsLen);
      if (!this.closeSent) this.socket.write(f);
    } else if (this.opcode === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
      this.close(code === 1005 ? 1000 : code, reason);
      this.finish(code, reason);
    }
  }

  private deliver(): void {
    const payload = this.target;
    this.target = undefined;
    this.progress = undefined;
    this.state = State.WsHead;
    this.need = 2;
    this.handlers.onMessage(this.header, payload);
  }
}

function wsHeaderLength(len: number, masked: boolean): number {
  return (len < 126 ? 2 : len < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/** RFC 6455 frame header, FIN set; a client's mask key is all zeros (the XOR is then a no-op). */
function writeWsHeader(buf: Buffer, opcode: number, len: number, masked: boolean): void {
  buf[0] = 0x80 | opcode;
  let o = 2;
  if (len < 126) buf[1] = len;
  else if (len < 65536) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
    o = 4;
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    buf.writeUInt32BE(len >>> 0, 6);
    o = 10;
  }
  if (masked) {
    buf[1] |= 0x80;
    buf.writeUInt32BE(0, o);
  }
}
