import { describe, expect, it } from 'vitest';
import { widenHalf } from './half-float.js';

/** Every 16-bit code, and the fp32 bit patterns of their widened values. */
const ALL_CODES = Uint16Array.from({ length: 65536 }, (_, i) => i);
const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** The value of a code by the formats' definitions: sign, biased exponent, mantissa bits. */
function reference(code: number, exponentBits: number, mantissaBits: number): number {
  const sign = code & 0x8000 ? -1 : 1;
  const bias = 2 ** (exponentBits - 1) - 1;
  const exp = (code >> mantissaBits) & (2 ** exponentBits - 1);
  const mant = code & (2 ** mantissaBits - 1);
  if (exp === 2 ** exponentBits - 1) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** (1 - bias - mantissaBits);
  return sign * (1 + mant / 2 ** mantissaBits) * 2 ** (exp - bias);
}

describe('16-bit floats widened to fp32', () => {
  for (const [dtype, exponentBits, mantissaBits] of [['BF16', 8, 7], ['F16', 5, 10]] as const) {
    it(`${dtype}: every one of the 65536 codes exactly (zeros signed, subnormals, infinities, NaN payloads kept)`, () => {
      const out = widenHalf(dtype, ALL_CODES);
      const outBits = bits(out);
      for (let code = 0; code < 65536; code++) {
        const want = reference(code, exponentBits, mantissaBits);
        if (Number.isNaN(want)) {
          // The quiet bit and payload travel to the top of fp32's mantissa.
          const payload = code & (2 ** mantissaBits - 1);
          if (!Number.isNaN(out[code]) || ((outBits[code] >>> (23 - mantissaBits)) & (2 ** mantissaBits - 1)) !== payload) throw new Error(`${dtype} ${code.toString(16)}: NaN payload lost`);
        } else if (!Object.is(out[code], want)) {
          throw new Error(`${dtype} ${code.toString(16)} widened to ${out[code]}, want ${want}`);
        }
      }
      expect(Object.is(out[0x8000], -0)).toBe(true);
    });
  }
});
