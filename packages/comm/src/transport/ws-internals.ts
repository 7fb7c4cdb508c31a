import type { WebSocket } from 'ws';

/**
 * ws fixes `maxPayload` per socket at construction; we want a tiny limit until the peer has
 * authenticated (so an unauthenticated peer cannot make us buffer a gigabyte) and the real limit
 * after. ws keeps the limit in its Receiver's `_maxPayload` field, checked on every frame header
 * before the payload is buffered. This is the one place that touches ws internals: if a future
 * ws renames the field, the pre-auth limit silently falls back to the full limit (logged by the
 * caller) and the test in channel.test.ts fails.
 */
interface ReceiverInternals { _maxPayload?: unknown }

export function setIncomingMessageLimit(ws: WebSocket, bytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: ReceiverInternals })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

/**
 * Client frames must be masked (RFC 6455), but masking is a defence for browsers behind
 * caching proxies, not for two trainer processes. An all-zero mask is valid, and ws 8 then skips
 * the XOR pass and the copy it needs, so large client->server payloads are sent without copying.
 */
export function zeroMask(mask: Buffer): void {
  mask[0] = mask[1] = mask[2] = mask[3] = 0;
}

/**
 * Takes the TCP socket away from a ws WebSocket whose handshake is over, for a StreamLink.
 * Returns undefined when ws holds unparsed bytes (the peer sent something it should not have).
 */
export function detachSocket(ws: WebSocket): import('node:net').Socket | undefined {
  const internals = ws as unknown as { _socket?: import('node:net').Socket; _receiver?: { _bufferedBytes?: unknown } };
  const socket = internals._socket;
  if (!socket || internals._receiver?._bufferedBytes !== 0) return undefined;
  for (const event of ['data', 'end', 'close', 'error', 'drain', 'timeout']) socket.removeAllListeners(event);
  return socket;
}
