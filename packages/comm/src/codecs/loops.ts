import type { ReduceOp } from './codec.js';

/** A reusable fp32 scratch array, grown on demand (the collectives are single-threaded). */
let scratch = new Float32Array(0);
export function scratchF32(length: number): Float32Array {
  if (scratch.length < length) scratch = new Float32Array(Math.max(length, scratch.length * 2));
  return scratch.subarray(0, length);
}

/**
 * dst[i] = op(dst[i], src[i]): the add loop every codec ends in. Unrolled by 4 (measured ~1.5x
 * faster than the plain loop in V8 on this machine); the result is the same element by element.
 */
export function combineInto(dst: Float32Array, src: Float32Array, op: ReduceOp): void {
  const n = dst.length;
  const n4 = n - (n % 4);
  let i = 0;
  if (op === 'sum') {
    for (; i < n4; i += 4) {
      dst[i] += src[i];
      dst[i + 1] += src[i + 1];
      dst[i + 2] += src[i + 2];
      dst[i + 3] += src[i + 3];
    }
    for (; i < n; i++) dst[i] += src[i];
  } else {
    for (; i < n; i++) dst[i] = Math.max(dst[i], src[i]);
  }
}

export function f32View(bytes: Uint8Array, length: number): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

export function u16View(bytes: Uint8Array, length: number): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, length);
}
