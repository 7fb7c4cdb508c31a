import type { ReduceOp } from './codec.js';

/** A reusable fp32 scratch array, grown on demand (the collectives are single-threaded). */
let scratch = new Float32Array(0);
export function scratchF32(length: number): Float32Array {
  if (scratch.length < length) scratch = new Float32Array(Math.max(length, scratch.length * 2));
  return scratch.subarray(0, length);
}

/** dst[i] = op(dst[i], src[i]): the add loop every codec ends in. */
export function combineInto(dst: Float32Array, src: Float32Array, op: ReduceOp): void {
  const n = dst.length;
  if (op === 'sum') {
    for (let i = 0; i < n; i++) dst[i] += src[i];
  } else {
    for (let i = 0; i < n; i++) dst[i] = Math.max(dst[i], src[i]);
  }
}

export function f32View(bytes: Uint8Array, length: number): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

export function u16View(bytes: Uint8Array, length: number): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, length);
}
