import type { ReduceOp, WireCodec } from './codec.js';
import { combineInto, scratchF32, u16View } from './loops.js';

/**
 * bfloat16: the top 16 bits of an fp32 (1 sign, 8 exponent, 7 mantissa bits), rounded to nearest
 * even: add 0x7FFF plus the lowest kept bit, then truncate. Values past the largest bf16 round to
 * infinity, exactly as IEEE rounding does; NaNs stay NaN (quiet bit forced so rounding cannot
 * turn one into infinity).
 */
export function encodeBf16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const b = bits[i];
    dst[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

/** Exact: a bf16 is an fp32 with 16 zero mantissa bits appended. */
export function decodeBf16(src: Uint16Array, dst: Float32Array): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  const n = dst.length;
  for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
}

export const bf16Codec: WireCodec = {
  name: 'bf16',
  bytesPerElement: 2,
  encode(src: Float32Array, wire: Uint8Array): void {
    encodeBf16(src, u16View(wire, src.length));
  },
  decode(wire: Uint8Array, dst: Float32Array): void {
    decodeBf16(u16View(wire, dst.length), dst);
  },
  reduceIntoWire(local: Float32Array, wire: Uint8Array, op: ReduceOp): void {
    const w = u16View(wire, local.length);
    const tmp = scratchF32(local.length);
    decodeBf16(w, tmp);
    combineInto(tmp, local, op);
    encodeBf16(tmp, w);
  },
  reduceIntoLocal(local: Float32Array, wire: Uint8Array, op: ReduceOp): void {
    const tmp = scratchF32(local.length);
    decodeBf16(u16View(wire, local.length), tmp);
    combineInto(local, tmp, op);
  },
  roundTrip(local: Float32Array): void {
    const bits = new Uint32Array(local.buffer, local.byteOffset, local.length);
    const n = local.length;
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      bits[i] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x400000) & 0xffff0000 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
    }
  },
};
