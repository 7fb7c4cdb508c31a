import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';

/** Per-channel size limits, enforced on every received frame before it is decoded. */
export interface ChannelLimits {
  /** Largest msgpack header accepted, in bytes. */
  maxHeaderBytes: number;
  /** Largest raw payload accepted, in bytes. */
  maxPayloadBytes: number;
}

/** 64 KiB of header is far more than any message needs; a larger one is a bug or an attack. */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
/** 1 GiB: a 256M-parameter fp32 bucket. Collectives split buffers into far smaller pieces. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024;
/** Before the handshake completes, a peer may send at most this much in one message. */
export const HANDSHAKE_MAX_MESSAGE_BYTES = 4 * 1024;
/** Default time for a connection to prove itself (server side) or to connect and handshake (client). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export const DEFAULT_LIMITS: Readonly<ChannelLimits> = Object.freeze({
  maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
});

/** Fills in defaults and refuses nonsense (negative, fractional, above 4 GiB). */
export function resolveLimits(limits: Partial<ChannelLimits> | undefined): ChannelLimits {
  const out = { ...DEFAULT_LIMITS, ...(limits ?? {}) };
  for (const key of ['maxHeaderBytes', 'maxPayloadBytes'] as const) {
    const v = out[key];
    if (!Number.isInteger(v) || v < 1 || v > 0xffff_ffff) {
      throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `limits.${key} must be an integer in [1, 2^32), got ${String(v)}`, {
        hint: `omit limits.${key} to use the default (${DEFAULT_LIMITS[key]} bytes)`,
      });
    }
  }
  return out;
}

/** The largest WebSocket message a channel with these limits can carry (prefix + header + padding + payload). */
export function maxMessageBytes(limits: ChannelLimits): number {
  return 4 + limits.maxHeaderBytes + 3 + limits.maxPayloadBytes;
}
