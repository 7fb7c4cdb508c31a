import * as tf from '@tensorflow/tfjs-core';
import { decodeBf16, decodeFp16, encodeFp16 } from '@trainer/comm';
import { constant } from '@trainer/model';
import { roundOnDevice } from './device-rounding.js';
import { chain, select } from './eager-ops.js';
import { packWgsl, unpackWgsl } from './webgpu-codes.js';
import { onWebGpu } from './webgpu-program.js';

/**
 * bf16 / fp16 values crossing the host-device boundary as their 16-bit codes, the wire's own
 * bytes (comm/codecs), so a 16-bit collective moves 2 bytes per element each way, not fp32's 4.
 *
 * TF.js has no 16-bit float dtype and no bitcast, so the device computes a code from a value with
 * fp32 arithmetic (exponent, significand, sign) and packs two codes into one int32:
 *
 *   code   = sign 2^(E+M) + expField 2^M + mantissa          (E, M: exponent and mantissa bits)
 *   packed = (code[2i+1] - 65536 [code[2i+1] >= 32768]) 65536 + code[2i]
 *
 * so that the int32's little-endian bytes are code[2i] then code[2i+1]: the host reads a download
 * as a Uint16Array of codes, and uploads one the same way. Encoding takes values already
 * representable in the format (the device rounds them first: device-rounding.ts).
 *
 * The exponent comes from log and pow, which a backend need not compute exactly; verifyWireCodes
 * runs every one of the 65536 codes through the device once per backend and format before a run
 * uses them (TfDevice.prepareWire), and the device moves fp32 where the check fails.
 */
export type HalfFormat = 'bf16' | 'fp16';

interface Layout {
  exponentBits: number;
  mantissaBits: number;
}

const LAYOUTS: Record<HalfFormat, Layout> = { bf16: { exponentBits: 8, mantissaBits: 7 }, fp16: { exponentBits: 5, mantissaBits: 10 } };

function layoutOf(format: HalfFormat) {
  const { exponentBits: E, mantissaBits: M } = LAYOUTS[format];
  const bias = 2 ** (E - 1) - 1;
  return { M, bias, emin: 1 - bias, emax: bias, signBit: 2 ** (E + M), special: (2 ** E - 1) * 2 ** M, quietNaN: (2 ** E - 1) * 2 ** M + 2 ** (M - 1) };
}

const f32 = (t: tf.Tensor) => tf.cast(t, 'float32');

/**
 * x [n] fp32, each value representable in `format` -> packed codes, int32 [ceil(n/2)]. On WebGPU
 * one WGSL program (webgpu-codes.ts; it would round any value as the host codec does).
 */
export function packOnDevice(x: tf.Tensor1D, format: HalfFormat): tf.Tensor1D {
  if (onWebGpu()) return packWgsl(x, format);
  const codes = encodeOnDevice(x, format);
  return pairCodes(codes);
}

/** packed codes int32 [ceil(n/2)] -> the n fp32 values they encode. */
export function unpackOnDevice(packed: tf.Tensor1D, n: number, format: HalfFormat): tf.Tensor1D {
  if (onWebGpu()) return unpackWgsl(packed, n, format);
  return decodeOnDevice(unpairCodes(packed, n), format);
}

/**
 * Values -> codes as float32 0..65535 (exact integers), then int32. Each intermediate is freed as
 * soon as it is dead: at most WIRE_CODE_TEMPORARIES tensors of x's size (and 1-byte masks) beside x.
 */
function encodeOnDevice(x: tf.Tensor1D, format: HalfFormat): tf.Tensor1D {
  const { M, bias, emin, emax, signBit, special, quietNaN } = layoutOf(format);
  const c = (v: number) => constant(v);
  const a = tf.abs(x);
  // e = floor(log2 a) clamped to the normal exponents (zero and subnormals: emin); log may put
  // the estimate one off next to a power of two, so it is corrected against 2^e by comparison.
  const e0 = chain(tf.log(a), (t) => tf.mul(t, c(1 / Math.LN2)), (t) => tf.floor(t), (t) => tf.clipByValue(t, emin, emax));
  const up = chain(tf.pow(c(2), e0), (t) => tf.mul(t, c(2)), (t) => tf.lessEqual(t, a), f32); // a >= 2^(e+1): one higher
  const e1 = tf.add(e0, up);
  tf.dispose([e0, up]);
  const down = tf.tidy(() => f32(tf.logicalAnd(tf.less(a, tf.pow(c(2), e1)), tf.greater(e1, c(emin))))); // a < 2^e: one lower
  const e = tf.sub(e1, down);
  tf.dispose([e1, down]);
  const frac = chain(tf.pow(c(2), e), (t) => tf.div(a, t)); // [1, 2) normal, [0, 1) subnormal
  const normal = chain(tf.greaterEqual(frac, c(1)), f32);
  const expField = chain(e, (t) => tf.add(t, c(bias)), (t) => tf.mul(t, normal)); // 0 for subnormals
  const fraction = tf.sub(frac, normal);
  tf.dispose([frac, normal]);
  const mant = chain(fraction, (t) => tf.mul(t, c(2 ** M)));
  const isNeg = tf.tidy(() => tf.logicalOr(tf.less(x, c(0)), tf.less(tf.div(c(1), x), c(0)))); // -0 included
  const signPart = chain(f32(isNeg), (t) => tf.mul(t, c(signBit)));
  isNeg.dispose();
  const finite = chain(expField, (t) => tf.mul(t, c(2 ** M)), (t) => tf.add(t, mant), (t) => tf.add(t, signPart));
  mant.dispose();
  const inf = chain(signPart, (t) => tf.add(t, c(special)));
  const withInf = select(tf.isInf(a), inf, finite, [inf, finite]);
  a.dispose();
  const nan = tf.fill(x.shape, quietNaN);
  const code = select(tf.isNaN(x), nan, withInf, [nan, withInf]);
  return chain(code, (t) => tf.cast(t, 'int32')) as tf.Tensor1D;
}

/** Codes as int32 -> fp32 values (consumes codes; at most WIRE_CODE_TEMPORARIES tensors of its size alive, and masks). */
function decodeOnDevice(codes: tf.Tensor1D, format: HalfFormat): tf.Tensor1D {
  const { M, bias, signBit, special } = layoutOf(format);
  const c = (v: number) => constant(v);
  const code = chain(codes, f32);
  const neg = tf.greaterEqual(code, c(signBit));
  const rest = chain(f32(neg), (t) => tf.mul(t, c(-signBit)), (t) => tf.add(t, code));
  code.dispose();
  const expField = chain(tf.mul(rest, c(2 ** -M)), (t) => tf.floor(t));
  const mant = chain(tf.mul(expField, c(-(2 ** M))), (t) => tf.add(t, rest));
  rest.dispose();
  // (mantissa + 2^M [normal]) 2^(max(expField, 1) - bias - M): subnormals share emin's scale.
  const significand = chain(tf.greaterEqual(expField, c(1)), f32, (t) => tf.mul(t, c(2 ** M)), (t) => tf.add(t, mant));
  const scale = chain(tf.maximum(expField, c(1)), (t) => tf.sub(t, c(bias + M)), (t) => tf.pow(c(2), t));
  const finite = tf.mul(significand, scale);
  tf.dispose([significand, scale]);
  const isSpecial = tf.equal(expField, c(special / 2 ** M));
  expField.dispose();
  const infOrNaN = chain(tf.equal(mant, c(0)), f32, (t) => tf.mul(t, c(Infinity))); // inf x 0 = NaN
  mant.dispose();
  const magnitude = select(isSpecial, infOrNaN, finite, [infOrNaN, finite]);
  const negated = tf.neg(magnitude);
  return select(neg, negated, magnitude, [negated, magnitude]) as tf.Tensor1D;
}

/** int32 codes [n] -> packed [ceil(n/2)]: two codes per element, the first in the low half. */
function pairCodes(codes: tf.Tensor1D): tf.Tensor1D {
  const n = codes.size;
  const k = Math.ceil(n / 2);
  const padded = n % 2 ? chain(codes, (t) => tf.tidy(() => tf.concat([t, tf.zeros([1], 'int32')]))) : codes;
  const pairs = tf.reshape(padded, [k, 2]);
  const lo = tf.tidy(() => tf.reshape(tf.slice(pairs, [0, 0], [k, 1]), [k]));
  const hi = tf.tidy(() => tf.reshape(tf.slice(pairs, [0, 1], [k, 1]), [k]));
  tf.dispose([padded, pairs]);
  const int = (v: number) => constant(v, 'int32');
  // the high code as a signed 16-bit value, so the int32 below cannot overflow
  const high = chain(tf.greaterEqual(hi, int(32768)), (t) => tf.cast(t, 'int32'), (t) => tf.mul(t, int(-65536)), (t) => tf.add(t, hi), (t) => tf.mul(t, int(65536)));
  hi.dispose();
  const packed = tf.add(high, lo) as tf.Tensor1D;
  tf.dispose([high, lo]);
  return packed;
}

/** packed [ceil(n/2)] -> int32 codes [n]. */
function unpairCodes(packed: tf.Tensor1D, n: number): tf.Tensor1D {
  const int = (v: number) => constant(v, 'int32');
  const high = tf.floorDiv(packed, int(65536)); // the signed high code
  const lo = chain(tf.mul(high, int(-65536)), (t) => tf.add(t, packed));
  const hi = chain(tf.less(high, int(0)), (t) => tf.cast(t, 'int32'), (t) => tf.mul(t, int(65536)), (t) => tf.add(t, high));
  high.dispose();
  const both = chain(tf.stack([lo, hi], 1), (t) => tf.reshape(t, [2 * packed.size]));
  tf.dispose([lo, hi]);
  return (both.size === n ? both : chain(both, (t) => tf.slice(t, [0], [n]))) as tf.Tensor1D;
}

/**
 * Elements encoded or decoded at once (16 MiB of fp32): bounds the codes' temporaries on the
 * device to WIRE_CODE_TEMPORARIES x 16 MiB however large the vector, for ~30 kernels a chunk.
 */
export const WIRE_CODE_CHUNK = 1 << 22;
/** Tensors of a chunk's size (fp32 or int32) that encoding or decoding keeps alive at once, beyond its input. */
export const WIRE_CODE_TEMPORARIES = 5;

/**
 * [start, end) of t read to the host through its codes: 2 bytes a value cross. t holds values of
 * `format`, or (`round`) fp32 values that are rounded to it on the device first, a chunk at a
 * time, as the wire would round them (ties aside: device-rounding.ts; on WebGPU exactly, by the
 * WGSL pack itself).
 */
export async function downloadAsCodes(t: tf.Tensor1D, start: number, end: number, format: HalfFormat, round = false): Promise<Float32Array> {
  const n = end - start;
  const codes = new Uint16Array(n + (n % 2));
  for (let at = start; at < end; at += WIRE_CODE_CHUNK) {
    const len = Math.min(WIRE_CODE_CHUNK, end - at);
    let part = at === 0 && len === t.size ? t : tf.slice(t, [at], [len]);
    if (round && !onWebGpu()) { // WebGPU's pack rounds as the host codec does
      const rounded = roundOnDevice(part, format, constant) as tf.Tensor1D;
      if (part !== t) part.dispose();
      part = rounded;
    }
    const packed = packOnDevice(part, format);
    if (part !== t) part.dispose();
    try {
      const words = (await packed.data()) as Int32Array;
      codes.set(new Uint16Array(words.buffer, words.byteOffset, len), at - start);
    } finally {
      packed.dispose();
    }
  }
  return valuesOfCodes(codes, n, format);
}

/**
 * Host values onto the device through their codes, when `format` holds every one exactly (what a
 * 16-bit wire delivers): 2 bytes a value cross. Null when one is not (fp32 must travel).
 */
export function uploadAsCodes(values: Float32Array, format: HalfFormat): tf.Tensor1D | null {
  const codes = exactCodes(values, format);
  if (!codes) return null;
  const parts: tf.Tensor1D[] = [];
  for (let at = 0; at < values.length; at += WIRE_CODE_CHUNK) {
    const len = Math.min(WIRE_CODE_CHUNK, values.length - at);
    const packed = tf.tensor1d(packedView(codes.subarray(at, at + len + (len % 2))), 'int32');
    parts.push(unpackOnDevice(packed, len, format));
    packed.dispose();
  }
  if (parts.length === 1) return parts[0];
  const out = tf.concat(parts) as tf.Tensor1D;
  tf.dispose(parts);
  return out;
}

/** Host side: the codes of values each representable in `format`, or null where one is not (then fp32 must travel). */
function exactCodes(values: Float32Array, format: HalfFormat): Uint16Array | null {
  const n = values.length;
  const codes = new Uint16Array(n + (n % 2));
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  if (format === 'bf16') {
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      if ((b & 0xffff) !== 0 && (b & 0x7fffffff) <= 0x7f800000) return null; // a NaN's payload does not matter
      codes[i] = b >>> 16;
    }
    return codes;
  }
  encodeFp16(values, codes.subarray(0, n));
  const back = new Float32Array(n);
  decodeFp16(codes.subarray(0, n), back);
  const backBits = new Uint32Array(back.buffer);
  for (let i = 0; i < n; i++) if (backBits[i] !== bits[i] && !(Number.isNaN(values[i]) && Number.isNaN(back[i]))) return null;
  return codes;
}

/** Host side: codes (as downloaded) -> the fp32 values they encode. */
export function valuesOfCodes(codes: Uint16Array, n: number, format: HalfFormat): Float32Array {
  const out = new Float32Array(n);
  (format === 'bf16' ? decodeBf16 : decodeFp16)(codes.subarray(0, n), out);
  return out;
}

/** The packed int32 view of host codes (an even number of them). */
function packedView(codes: Uint16Array): Int32Array {
  return new Int32Array(codes.buffer, codes.byteOffset, codes.length / 2);
}

/**
 * Runs all 65536 codes through the active backend: unpack and decode, then encode and pack again,
 * against the host codec. A NaN may come back as any NaN; a backend that flushes subnormals to
 * zero may decode a subnormal to a zero of its sign (such a device never holds a subnormal to
 * send). Returns what differs first, or null when the backend computes every code exactly.
 */
export async function verifyWireCodes(format: HalfFormat): Promise<string | null> {
  const all = new Uint16Array(65536);
  for (let i = 0; i < all.length; i++) all[i] = i;
  const expected = valuesOfCodes(all, all.length, format);
  const packed = tf.tensor1d(packedView(all), 'int32');
  const values = unpackOnDevice(packed, all.length, format);
  const repacked = packOnDevice(values, format);
  packed.dispose();
  try {
    const got = (await values.data()) as Float32Array;
    const codes = new Uint16Array(((await repacked.data()) as Int32Array).slice().buffer);
    for (let i = 0; i < all.length; i++) {
      const want = expected[i];
      const flushed = got[i] === 0 && want !== 0 && Math.abs(want) < (format === 'bf16' ? 2 ** -126 : 2 ** -14);
      if (Number.isNaN(want) ? !Number.isNaN(got[i]) : !(Object.is(got[i], want) || flushed)) {
        return `code 0x${i.toString(16)} decodes to ${got[i]} on the device, ${want} on the host`;
      }
      const sameCode = codes[i] === i || (Number.isNaN(want) && Number.isNaN(valuesOfCodes(codes.subarray(i, i + 1), 1, format)[0])) || (flushed && (codes[i] & 0x7fff) === 0);
      if (!sameCode) return `${want} encodes to 0x${codes[i].toString(16)} on the device, 0x${i.toString(16)} on the host`;
    }
    return null;
  } finally {
    tf.dispose([values, repacked]);
  }
}
