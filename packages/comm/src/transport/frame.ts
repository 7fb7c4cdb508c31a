import { Packr, Unpackr } from 'msgpackr';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { ChannelLimits } from './limits.js';

/**
 * The wire frame: one binary WebSocket message =
 *
 *   [u32 LE header length H][H bytes msgpack map][0-3 zero bytes of padding][raw payload]
 *
 * The padding puts the payload on a 4-byte boundary of the frame, so a receiver can read fp32 or
 * 16-bit values straight out of the frame without copying. The header is decoded with msgpackr's
 * safe options (no records, no structured clone, no extension types beyond msgpack's own) and then
 * validated: a plain map of plain values, no `__proto__` / `constructor` keys, within the limits.
 * The protocol version is negotiated once, in the handshake (handshake.ts).
 */
export type Header = Record<string, unknown>;

export interface DecodedFrame {
  header: Header;
  /** A view into the frame (no copy); undefined when the frame carries no payload. */
  payload: Uint8Array | undefined;
}

const PREFIX_BYTES = 4;
const MAX_HEADER_DEPTH = 8;
const FORBIDDEN_KEYS = new Set(['__proto__', '__proto_', 'constructor', 'prototype']);

const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: 'number',
});

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** msgpack bytes of a header (validated the same way a receiver would). */
export function encodeHeader(header: Header): Uint8Array {
  if (!isPlainObject(header)) {
    throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, 'a frame header must be a plain object', {
      hint: 'pass a { key: value } object as the header',
    });
  }
  return packr.pack(header);
}

/**
 * A header sent many times with only a few small integer fields changing (the data pieces of a
 * collective): the constant part is encoded once, and `encode` appends the integer fields in
 * msgpack's own encoding. The result is an ordinary msgpack map, decoded and validated by the
 * receiver like any other header; it only saves re-encoding (and re-allocating) the same fields.
 */
export class HeaderTemplate {
  private readonly entries: Uint8Array;
  private readonly count: number;
  private readonly keys: Uint8Array[];

  constructor(base: Header, intKeys: readonly string[]) {
    const bytes = encodeHeader(base);
    const count = Object.keys(base).length + intKeys.length;
    // a fixmap (0x80 | n) of up to 15 entries; anything else falls back to encoding in full
    if ((bytes[0] & 0xf0) !== 0x80 || count > 15 || intKeys.some((k) => k.length > 31 || Object.hasOwn(base, k))) {
      throw new RangeError('HeaderTemplate: base must encode as a small map and the integer keys must be new short strings');
    }
    this.entries = bytes.slice(1);
    this.count = count;
    this.keys = intKeys.map((k) => Uint8Array.from([0xa0 | k.length, ...Buffer.from(k, 'latin1')]));
  }

  /** The header with intKeys[i] = values[i] (non-negative integers below 2^32). */
  encode(values: readonly number[]): Uint8Array {
    let size = 1 + this.entries.length;
    for (let i = 0; i < values.length; i++) size += this.keys[i].length + uintBytes(values[i]);
    const out = new Uint8Array(size);
    out[0] = 0x80 | this.count;
    out.set(this.entries, 1);
    let o = 1 + this.entries.length;
    for (let i = 0; i < values.length; i++) {
      out.set(this.keys[i], o);
      o += this.keys[i].length;
      o = writeUint(out, o, values[i]);
    }
    return out;
  }
}

function uintBytes(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) throw new RangeError(`HeaderTemplate: ${v} is not a u32`);
  return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
}

function writeUint(out: Uint8Array, o: number, v: number): number {
  if (v < 0x80) {
    out[o] = v;
    return o + 1;
  }
  if (v < 0x100) {
    out[o] = 0xcc;
    out[o + 1] = v;
    return o + 2;
  }
  if (v < 0x10000) {
    out[o] = 0xcd;
    out[o + 1] = v >>> 8;
    out[o + 2] = v & 0xff;
    return o + 3;
  }
  out[o] = 0xce;
  out[o + 1] = v >>> 24;
  out[o + 2] = (v >>> 16) & 0xff;
  out[o + 3] = (v >>> 8) & 0xff;
  out[o + 4] = v & 0xff;
  return o + 5;
}

/**
 * Allocates a frame for a header and a payload of `payloadLength` bytes, writes the prefix and
 * header, and returns it with the payload's offset so the caller can fill the payload in place.
 */
export function allocFrame(headerBytes: Uint8Array, payloadLength: number): { frame: Buffer; payloadOffset: number } {
  const payloadOffset = align4(PREFIX_BYTES + headerBytes.length);
  const frame = Buffer.allocUnsafe(payloadOffset + payloadLength);
  frame.writeUInt32LE(headerBytes.length, 0);
  frame.set(headerBytes, PREFIX_BYTES);
  frame.fill(0, PREFIX_BYTES + headerBytes.length, payloadOffset);
  return { frame, payloadOffset };
}

/** One frame holding a copy of `payload`; the header as an object or as encoded bytes (encodeHeader, HeaderTemplate). */
export function encodeFrame(header: Header | Uint8Array, payload?: Uint8Array): Buffer {
  const { frame, payloadOffset } = allocFrame(header instanceof Uint8Array ? header : encodeHeader(header), payload ? payload.byteLength : 0);
  if (payload) frame.set(payload, payloadOffset);
  return frame;
}

function invalid(reason: string): TrainerError {
  return new TrainerError(CommErrorCode.FRAME_INVALID, `invalid frame: ${reason}`, {
    hint: 'the peer is not a trainer comm endpoint of this version, or the stream is corrupted',
  });
}

function tooLarge(what: string, size: number, limit: number): TrainerError {
  return new TrainerError(CommErrorCode.FRAME_TOO_LARGE, `frame ${what} of ${size} bytes exceeds the limit of ${limit} bytes`, {
    hint: `raise limits.${what === 'header' ? 'maxHeaderBytes' : 'maxPayloadBytes'} on both ends, or send smaller messages`,
    details: { size, limit },
  });
}

/** Parses and validates one received frame. Throws TrainerError (FRAME_INVALID / FRAME_TOO_LARGE). */
export function decodeFrame(data: Uint8Array, limits: ChannelLimits): DecodedFrame {
  if (data.byteLength < PREFIX_BYTES) throw invalid(`${data.byteLength} bytes is shorter than the 4-byte prefix`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const headerLength = view.getUint32(0, true);
  if (headerLength > limits.maxHeaderBytes) throw tooLarge('header', headerLength, limits.maxHeaderBytes);
  if (headerLength === 0) throw invalid('empty header');
  const payloadOffset = align4(PREFIX_BYTES + headerLength);
  if (payloadOffset > data.byteLength) throw invalid(`header length ${headerLength} runs past the end of a ${data.byteLength}-byte frame`);
  const payloadLength = data.byteLength - payloadOffset;
  if (payloadLength > limits.maxPayloadBytes) throw tooLarge('payload', payloadLength, limits.maxPayloadBytes);
  const header = decodeHeader(data.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength));
  return { header, payload: payloadLength > 0 ? data.subarray(payloadOffset) : undefined };
}

/** Decodes and validates msgpack bytes that must hold a plain map (a header, or a hello). */
export function decodeHeader(bytes: Uint8Array): Header {
  let header: unknown;
  try {
    header = unpackr.unpack(bytes);
  } catch (err) {
    throw invalid(`header is not msgpack (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isPlainObject(header)) throw invalid('header is not a map');
  const problem = findUnsafeValue(header, 0);
  if (problem) throw invalid(problem);
  return header;
}

function isPlainObject(v: unknown): v is Header {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Describes the first value a header must not contain, or returns undefined when all is well. */
function findUnsafeValue(v: unknown, depth: number): string | undefined {
  if (depth > MAX_HEADER_DEPTH) return `header nested deeper than ${MAX_HEADER_DEPTH} levels`;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
  if (typeof v === 'number') return undefined;
  if (v instanceof Uint8Array) return undefined;
  if (Array.isArray(v)) {
    for (const item of v) {
      const p = findUnsafeValue(item, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (isPlainObject(v)) {
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) return `forbidden key "${key}" in header`;
      const p = findUnsafeValue(v[key], depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  return `header holds a value of type ${typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v}`;
}
