import * as tf from '@tensorflow/tfjs-core';
import { decodeBf16, decodeFp16, encodeBf16, encodeFp16 } from '@trainer/comm';
import { initBackend } from '@trainer/model';
import { describe, expect, it } from 'vitest';
import { roundOnDevice } from './device-rounding.js';

const constant = (v: number) => tf.scalar(v);

/** The host's round-to-nearest-even through the wire codecs' encoders. */
function hostRound(values: Float32Array, precision: 'bf16' | 'fp16'): Float32Array {
  const codes = new Uint16Array(values.length);
  const out = new Float32Array(values.length);
  if (precision === 'bf16') decodeBf16((encodeBf16(values, codes), codes), out);
  else decodeFp16((encodeFp16(values, codes), codes), out);
  return out;
}

describe('roundOnDevice', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    for (const precision of ['bf16', 'fp16'] as const) {
      it(`${precision} on ${backend}: the host encoder's values, ties aside; overflow, subnormals, inf and NaN as the format has them`, async () => {
        await initBackend(backend);
        const n = 200_000;
        const values = new Float32Array(n);
        let seed = 7;
        const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
        for (let i = 0; i < n; i++) values[i] = (rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 30);
        // Specials: around fp16's top and subnormal range, exact ties, infinities, NaN, zeros.
        values.set([65504, 65519, 65520, 70000, -1e6, 2 ** -20, 3 * 2 ** -25, 2 ** -26, 1 + 2 ** -8, 1 + 2 ** -11, Infinity, -Infinity, NaN, 0, -0]);
        const want = hostRound(values, precision);
        const got = (await roundOnDevice(tf.tensor1d(values), precision, constant).data()) as Float32Array;
        let mismatches = 0;
        for (let i = 0; i < n; i++) {
          if (Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i]))) continue;
          mismatches++;
          // Only an exact tie may round the other way: the two candidates are one unit apart, x halfway.
          expect(Math.abs(got[i] - values[i]), `${values[i]}: ${got[i]} vs ${want[i]}`).toBe(Math.abs(want[i] - values[i]));
        }
        expect(mismatches / n).toBeLessThan(1e-3);
        expect(Array.from(got.subarray(10, 13))).toEqual([Infinity, -Infinity, NaN]);
      });
    }
  }
});
