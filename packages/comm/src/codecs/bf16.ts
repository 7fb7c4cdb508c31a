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
