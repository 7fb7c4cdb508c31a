import * as tf from '@tensorflow/tfjs-core';
import { chain, select } from './eager-ops.js';

/**
 * Rounding fp32 tensors to bf16 / fp16 values with fp32 arithmetic only (TF.js has no 16-bit
 * float dtype and no bitcast). The result is an fp32 tensor whose every value is representable in
 * the format, as a 16-bit store on the host holds (vector-store.ts).
 *
 * Within the format's normal range this is Veltkamp's splitting (Dekker 1971): with
 * c = x (2^s + 1), hi = c - (c - x) is x rounded to nearest on 24 - s significant bits:
 * s = 16 gives bf16's 8 bits, s = 13 fp16's 11. It rounds to nearest everywhere but may break an
 * exact tie away from even where the host encoder breaks it to even (a tie needs the 16 or 13
 * low bits to be exactly 100...0); device-rounding.test.ts measures how often. fp16 also:
 * magnitudes from 65520 (halfway to 2^16) become infinities, as fp16 overflows, and below 2^-14
 * values are rounded to multiples of 2^-24 (its subnormals, tf.round breaks ties to even).
 * Infinities and NaN pass through.
 *
 * Each intermediate is freed as soon as the next exists: at most ROUNDING_TEMPORARIES tensors of
 * x's size (and a 1-byte mask) are alive beside x.
 */
export const ROUNDING_TEMPORARIES = 3;

export function roundOnDevice(x: tf.Tensor, precision: 'bf16' | 'fp16', constant: (v: number) => tf.Scalar): tf.Tensor {
  const hi = veltkamp(x, constant(precision === 'bf16' ? 65537 : 8193));
  const abs = tf.abs(x);
  if (precision === 'bf16') {
    // Near fp32's top (|x| c overflows) and for inf/NaN, keep x (bf16 has fp32's exponent range).
    return select(tf.less(abs, constant(2 ** 110)), hi, x, [abs, hi]);
  }
  const small = tf.less(abs, constant(2 ** -14));
  const big = tf.greaterEqual(abs, constant(65520));
  abs.dispose();
  const subnormal = chain(tf.mul(x, constant(2 ** 24)), (t) => tf.round(t), (t) => tf.mul(t, constant(2 ** -24)));
  const inRange = select(small, subnormal, hi, [subnormal, hi]);
  const overflow = chain(tf.sign(x), (t) => tf.mul(t, constant(Infinity)));
  // NaN compares false everywhere: it stays NaN through hi.
  return select(big, overflow, inRange, [overflow, inRange]);
}

/** hi = c x - (c x - x): x rounded to the format's significant bits. */
function veltkamp(x: tf.Tensor, c: tf.Scalar): tf.Tensor {
  const scaled = tf.mul(x, c);
  const diff = tf.sub(scaled, x);
  const hi = tf.sub(scaled, diff);
  tf.dispose([scaled, diff]);
  return hi;
}
