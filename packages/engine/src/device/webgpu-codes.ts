import type * as tf from '@tensorflow/tfjs-core';
import { flatProgram, runProgram, type Uniform } from './webgpu-program.js';
import type { HalfFormat } from './wire-codes.js';

/**
 * bf16 / fp16 wire codes as WGSL programs on WebGPU: WGSL has bitcast, so each code is the host
 * codec's own integer arithmetic (comm/codecs: round to nearest even, overflow to infinity,
 * subnormals, NaN kept quiet), one program each way, no temporaries. The generic TF.js version
 * (wire-codes.ts) needs ~30 kernels and only handles values already in the format.
 *
 *   pack    x [n] f32 -> packed [ceil(n/2)] i32: code(x[2i]) | code(x[2i+1]) << 16
 *   unpack  packed [ceil(n/2)] i32 -> x [n] f32
 */

/** fp32 bits -> code, rounded to nearest even (comm/codecs/bf16.ts, fp16.ts f32BitsToF16). */
const ENCODE: Record<HalfFormat, string> = {
  bf16: `
    fn code(x : f32) -> u32 {
      let b = bitcast<u32>(x);
      if ((b & 0x7fffffffu) > 0x7f800000u) { return (b >> 16u) | 0x40u; }
      return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
    }`,
  fp16: `
    fn code(x : f32) -> u32 {
      let b = bitcast<u32>(x);
      let sign = (b >> 16u) & 0x8000u;
      let e = i32((b >> 23u) & 0xffu);
      let mant = b & 0x7fffffu;
      if (e == 255) { return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u); }
      let e16 = e - 112;
      if (e16 >= 31) { return sign | 0x7c00u; }
      if (e16 <= 0) {
        if (e16 < -10) { return sign; }
        let m = mant | 0x800000u;
        let shift = u32(14 - e16);
        var h = m >> shift;
        let rem = m & ((1u << shift) - 1u);
        let half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u) != 0u)) { h = h + 1u; }
        return sign | h;
      }
      var h = sign | (u32(e16) << 10u) | (mant >> 13u);
      let rem = mant & 0x1fffu;
      if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) { h = h + 1u; }
      return h;
    }`,
};

/** code -> f32 bits, exactly (comm/codecs decode). */
const DECODE: Record<HalfFormat, string> = {
  bf16: `
    fn value(c : u32) -> f32 {
      return bitcast<f32>(c << 16u);
    }`,
  fp16: `
    fn value(c : u32) -> f32 {
      let sign = (c & 0x8000u) << 16u;
      let e = (c >> 10u) & 0x1fu;
      let m = c & 0x3ffu;
      if (e == 0u) { return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8)); } // m 2^-24: exact
      if (e == 31u) { return bitcast<f32>(sign | 0x7f800000u | (m << 13u)); }
      return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
    }`,
};

/** x [n] f32 (any values: rounded as the host codec rounds) -> packed codes, int32 [ceil(n/2)]. */
export function packWgsl(x: tf.Tensor1D, format: HalfFormat): tf.Tensor1D {
  const n = x.size;
  const u: Uniform[] = [{ name: 'n', type: 'i32', value: n }];
  const body = `
    let i = index * 2;
    var hi = 0u;
    if (i + 1 < uniforms.n) { hi = code(x[i + 1]); }
    result[index] = bitcast<i32>(code(x[i]) | (hi << 16u));`;
  return runProgram(flatProgram(`pack_${format}`, Math.ceil(n / 2), ['x'], u, body, ENCODE[format]), [x], 'int32', u);
}

/** packed codes int32 [ceil(n/2)] -> the n values, f32. */
export function unpackWgsl(packed: tf.Tensor1D, n: number, format: HalfFormat): tf.Tensor1D {
  const body = `
    let word = bitcast<u32>(packed[index / 2]);
    result[index] = value(select(word & 0xffffu, word >> 16u, (index & 1) == 1));`;
  return runProgram(flatProgram(`unpack_${format}`, n, ['packed'], [], body, DECODE[format]), [packed], 'float32', []);
}
