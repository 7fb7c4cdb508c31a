/**
 * 16-bit floats widened to fp32, exactly: every bf16 and every IEEE half is an fp32 value, so
 * widening is a change of bit layout, not a rounding. (Rounding the other way is the engine's
 * business: its precision store holds the 16-bit values a checkpoint saves.)
 *
 *   bf16: [sign 1 | exponent 8 | mantissa 7]   -> fp32 bits = bf16 << 16
 *   fp16: [sign 1 | exponent 5 | mantissa 10]  -> exponent rebiased 15 -> 127, mantissa << 13;
 *         subnormals (exponent 0) are mantissa x 2^-24, normal in fp32
 */
export type HalfDtype = 'BF16' | 'F16';

/** dst[i] = the fp32 value of bf16 code src[i]. */
export function widenBf16(src: Uint16Array, dst: Float32Array): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < dst.length; i++) bits[i] = src[i] << 16;
}

/** dst[i] = the fp32 value of IEEE half code src[i] (infinities stay infinite, NaN payloads kept). */
export function widenF16(src: Uint16Array, dst: Float32Array): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < dst.length; i++) {
    const h = src[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[i] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) bits[i] = sign | ((exp + 112) << 23) | (mant << 13);
    else dst[i] = (sign ? -mant : mant) * 2 ** -24; // zero or subnormal: exact in fp32 (and -0 for a negative zero)
  }
}

/** Widens raw little-endian 16-bit codes of `dtype` into a new Float32Array. */
export function widenHalf(dtype: HalfDtype, codes: Uint16Array): Float32Array {
  const out = new Float32Array(codes.length);
  (dtype === 'BF16' ? widenBf16 : widenF16)(codes, out);
  return out;
}
