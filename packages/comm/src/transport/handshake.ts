import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { WebSocket } from 'ws';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { decodeFrame, decodeHeader, encodeFrame, encodeHeader, type Header } from './frame.js';
import { HANDSHAKE_MAX_MESSAGE_BYTES, type ChannelLimits } from './limits.js';

/**
 * Mutual authentication with a shared cluster token, which never crosses the wire:
 *
 *   server -> client  challenge { proto, v, nonce: Ns }
 *   client -> server  auth      { proto, v, role, nonce: Nc, hello: H_c, proof: HMAC(token, "client" | Ns | Nc | role | H_c) }
 *   server -> client  welcome   { hello: H_s, proof: HMAC(token, "server" | Ns | Nc | role | H_s) }
 *                     (or refused { code, reason }, then close)
 *
 * Both nonces are fresh 32-byte random values, so a recorded proof is useless on another
 * connection; the role and both hellos are inside the MAC, so they cannot be swapped in transit.
 * Proofs are compared with crypto.timingSafeEqual. Nothing else is accepted before the handshake.
 */
export const PROTOCOL_NAME = 'trainer-comm';
export const PROTOCOL_VERSION = 1;
/** ws: messages parsed by ws (control). stream: the same frames parsed by StreamLink (data). */
export type TransportMode = 'ws' | 'stream';
const NONCE_BYTES = 32;
const ROLE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

/** Close codes (4000-4999 are for applications) sent with a refused handshake or a protocol violation. */
export const CLOSE_CODES: Record<string, number> = {
  [CommErrorCode.AUTH_FAILED]: 4001,
  [CommErrorCode.HANDSHAKE_TIMEOUT]: 4002,
  [CommErrorCode.ROLE_MISMATCH]: 4003,
  [CommErrorCode.PROTOCOL_VERSION]: 4004,
  [CommErrorCode.FRAME_INVALID]: 4005,
  [CommErrorCode.FRAME_TOO_LARGE]: 1009,
};

const HANDSHAKE_LIMITS: ChannelLimits = { maxHeaderBytes: HANDSHAKE_MAX_MESSAGE_BYTES, maxPayloadBytes: 1 };

export interface HandshakeResult {
  remoteHello: Header;
}

export function validateRole(role: unknown): string {
  if (typeof role !== 'string' || !ROLE_PATTERN.test(role)) {
    throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `invalid channel role ${JSON.stringify(role)}`, {
      hint: 'a role is a short lowercase name such as "control" or "data"',
    });
  }
  return role;
}

export function validateToken(token: unknown): string {
  if (typeof token !== 'string' || token.length < 8) {
    throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, 'the cluster token must be a string of at least 8 characters', {
      hint: 'generate one with crypto.randomBytes(32).toString("hex") and give the same one to every process',
    });
  }
  return token;
}

function proof(token: string, side: 'client' | 'server', ns: Uint8Array, nc: Uint8Array, role: string, hello: Uint8Array): Buffer {
  return createHmac('sha256', token)
    .update(`${PROTOCOL_NAME}/${PROTOCOL_VERSION} ${side}\0`)
    .update(ns)
    .update(nc)
    .update(`${role}\0`)
    .update(hello)
    .digest();
}

function proofMatches(expected: Buffer, got: unknown): boolean {
  return got instanceof Uint8Array && got.byteLength === expected.byteLength && timingSafeEqual(expected, got);
}

function fail(code: string, message: string, hint: string): TrainerError {
  return new TrainerError(code, message, { hint });
}

function bytesField(h: Header, key: string, length?: number): Uint8Array {
  const v = h[key];
  if (!(v instanceof Uint8Array) || (length !== undefined && v.byteLength !== length)) {
    throw fail(CommErrorCode.FRAME_INVALID, `handshake field "${key}" is missing or malformed`, 'the peer is not a trainer comm endpoint');
  }
  return v;
}

function checkProtocol(h: Header): void {
  if (h.proto !== PROTOCOL_NAME || h.v !== PROTOCOL_VERSION) {
    throw fail(
      CommErrorCode.PROTOCOL_VERSION,
      `peer speaks ${JSON.stringify(h.proto)} version ${JSON.stringify(h.v)}, expected ${PROTOCOL_NAME} version ${PROTOCOL_VERSION}`,
      'run the same trainer version on every node',
    );
  }
}

type InboxEvent =
  | { kind: 'message'; data: Buffer; isBinary: boolean }
  | { kind: 'close'; code: number; reason: Buffer }
  | { kind: 'error'; err: Error & { code?: string } };

/**
 * Collects a socket's events from the moment it exists: the peer's first message can arrive in
 * the same TCP segment as the upgrade response, before any await has had a chance to listen.
 * After the handshake, detach() hands over messages that arrived behind the last handshake message.
 */
export class HandshakeInbox {
  private readonly events: InboxEvent[] = [];
  private waiter: (() => void) | undefined;
  private readonly onMessage = (data: Buffer, isBinary: boolean): void => this.push({ kind: 'message', data, isBinary });
  private readonly onClose = (code: number, reason: Buffer): void => this.push({ kind: 'close', code, reason });
  private readonly onError = (err: Error): void => this.push({ kind: 'error', err });

  constructor(private readonly ws: WebSocket) {
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
    ws.on('error', this.onError);
  }

  private push(e: InboxEvent): void {
    this.events.push(e);
    this.waiter?.();
  }

  /** Stops listening; returns the binary messages received after the handshake. */
  detach(): Buffer[] {
    this.ws.off('message', this.onMessage);
    this.ws.off('close', this.onClose);
    this.ws.off('error', this.onError);
    return this.events.flatMap((e) => (e.kind === 'message' ? [e.data] : []));
  }

  /** Resolves with the next handshake message, or rejects on timeout, close, or a malformed frame. */
  async next(deadline: number, expect: string): Promise<Header> {
    while (this.events.length === 0) {
      const arrived = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.waiter = undefined;
      if (!arrived) {
        throw fail(CommErrorCode.HANDSHAKE_TIMEOUT, `handshake timed out waiting for "${expect}"`, 'check that both ends use the trainer comm protocol and that the network is not stalled');
      }
    }
    const e = this.events.shift()!;
    if (e.kind === 'close') {
      const text = e.reason.toString('utf8');
      const known = Object.keys(CLOSE_CODES).find((k) => CLOSE_CODES[k] === e.code && k === text);
      throw known
        ? fail(known, `the peer closed the connection during the handshake (${text})`, 'check that every process uses the same cluster token, role and trainer version')
        : fail(CommErrorCode.CONNECT_FAILED, `connection closed during the handshake (code ${e.code}${text ? `, ${text}` : ''})`, 'check that the address belongs to a trainer process');
    }
    if (e.kind === 'error') {
      const code = e.err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CommErrorCode.FRAME_TOO_LARGE : CommErrorCode.FRAME_INVALID;
      throw fail(code, `handshake failed: ${e.err.message}`, 'the peer is not a trainer comm endpoint');
    }
    if (!e.isBinary) throw fail(CommErrorCode.FRAME_INVALID, 'text message during handshake', 'the peer is not a trainer comm endpoint');
    const { header, payload } = decodeFrame(e.data, HANDSHAKE_LIMITS);
    if (payload) throw fail(CommErrorCode.FRAME_INVALID, 'payload during handshake', 'the peer is not a trainer comm endpoint');
    if (header.hs === 'refused') {
      const code = typeof header.code === 'string' && /^TRAINER_ERR_[A-Z_]+$/.test(header.code) ? header.code : CommErrorCode.AUTH_FAILED;
      throw fail(code, `the server refused the connection: ${String(header.reason).slice(0, 200)}`, 'check that every process uses the same cluster token, role and trainer version');
    }
    if (header.hs !== expect) throw fail(CommErrorCode.FRAME_INVALID, `expected handshake "${expect}", got ${JSON.stringify(header.hs)}`, 'the peer is not a trainer comm endpoint');
    return header;
  }
}

/** Server side. Rejects with a coded TrainerError; the caller closes the socket. */
export async function serverHandshake(ws: WebSocket, inbox: HandshakeInbox, opts: { token: string; role: string; hello: Header; deadline: number; mode: TransportMode }): Promise<HandshakeResult> {
  const ns = randomBytes(NONCE_BYTES);
  ws.send(encodeFrame({ hs: 'challenge', proto: PROTOCOL_NAME, v: PROTOCOL_VERSION, nonce: ns }));
  const auth = await inbox.next(opts.deadline, 'auth');
  checkProtocol(auth);
  const nc = bytesField(auth, 'nonce', NONCE_BYTES);
  const helloBytes = bytesField(auth, 'hello');
  const role = typeof auth.role === 'string' ? auth.role : '';
  if (!proofMatches(proof(opts.token, 'client', ns, nc, role, helloBytes), auth.proof)) {
    throw fail(CommErrorCode.AUTH_FAILED, 'the client could not prove it holds the cluster token', 'give every process the same cluster token');
  }
  if (role !== opts.role) {
    throw fail(CommErrorCode.ROLE_MISMATCH, `a "${role.slice(0, 32)}" client connected to a "${opts.role}" endpoint`, 'connect control clients to the coordinator port and data peers to the data port');
  }
  if ((auth.mode ?? 'ws') !== opts.mode) {
    throw fail(CommErrorCode.PROTOCOL_VERSION, `the client asked for transport mode ${JSON.stringify(auth.mode)}, this endpoint uses "${opts.mode}"`, 'connect data peers with DataPlane and control clients with connectChannel');
  }
  const remoteHello = decodeHeader(helloBytes);
  const myHello = encodeHeader(opts.hello);
  ws.send(encodeFrame({ hs: 'welcome', hello: myHello, proof: proof(opts.token, 'server', ns, nc, role, myHello) }));
  return { remoteHello };
}

/** Client side. Rejects with a coded TrainerError; the caller closes the socket. */
export async function clientHandshake(ws: WebSocket, inbox: HandshakeInbox, opts: { token: string; role: string; hello: Header; deadline: number; mode: TransportMode }): Promise<HandshakeResult> {
  const challenge = await inbox.next(opts.deadline, 'challenge');
  checkProtocol(challenge);
  const ns = bytesField(challenge, 'nonce', NONCE_BYTES);
  const nc = randomBytes(NONCE_BYTES);
  const myHello = encodeHeader(opts.hello);
  ws.send(encodeFrame({
    hs: 'auth', proto: PROTOCOL_NAME, v: PROTOCOL_VERSION, role: opts.role, mode: opts.mode, nonce: nc, hello: myHello,
    proof: proof(opts.token, 'client', ns, nc, opts.role, myHello),
  }));
  const welcome = await inbox.next(opts.deadline, 'welcome');
  const helloBytes = bytesField(welcome, 'hello');
  if (!proofMatches(proof(opts.token, 'server', ns, nc, opts.role, helloBytes), welcome.proof)) {
    throw fail(CommErrorCode.AUTH_FAILED, 'the server could not prove it holds the cluster token', 'give every process the same cluster token, and check the address');
  }
  return { remoteHello: decodeHeader(helloBytes) };
}

/** Tells the peer why it is refused (never mentioning the token), then closes. */
export function refuse(ws: WebSocket, err: TrainerError): void {
  try {
    if (ws.readyState === ws.OPEN && err.code !== CommErrorCode.FRAME_TOO_LARGE) {
      ws.send(encodeFrame({ hs: 'refused', code: err.code, reason: err.message.slice(0, 200) }));
    }
    ws.close(CLOSE_CODES[err.code] ?? 4005, err.code);
  } catch {
    ws.terminate();
  }
}
