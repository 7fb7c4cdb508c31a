import { opCode, type ReduceOp, type WireCodec } from './codec.js';
import { addressIn, arenaOf } from './fp32.js';

interface HalfKernels {
  encode: 'encodeBf16' | 'encodeFp16';
  decode: 'decodeBf16' | 'decodeFp16';
  reduceWire: 'reduceWireBf16' | 'reduceWireFp16';
  reduceLocal: 'reduceLocalBf16' | 'reduceLocalFp16';
}

/**
 * A 16-bit wire format run by the SIMD kernels (8 values per step): the caller's fp32 values are
 * converted and combined with the wire in one pass, in place when they live in the wire buffer's
 * arena (Communicator.allocBuffer), else on a copy in its scratch area, copied back when they change. The formats are defined by the scalar references in bf16.ts and fp16.ts,
 * which the kernels match bit for bit (tested).
 */
function halfCodec(name: 'bf16' | 'fp16', k: HalfKernels): WireCodec {
  return {
    name,
    bytesPerElement: 2,
    encode(values: Float32Array, wire: Uint8Array, keep: boolean): void {
      const arena = arenaOf(wire);
      const at = arena.place(values);
      arena.kernels[k.encode](at, wire.byteOffset, values.length, keep ? 1 : 0);
      if (keep) arena.unplace(values, at);
    },
    decode(wire: Uint8Array, values: Float32Array): void {
      const arena = arenaOf(wire);
      const at = arena.outputFor(values);
      arena.kernels[k.decode](wire.byteOffset, at, values.length);
      arena.unplace(values, at);
    },
    reduceIntoWire(values: Float32Array, wire: Uint8Array, op: ReduceOp): void {
      const arena = arenaOf(wire);
      arena.kernels[k.reduceWire](arena.place(values), wire.byteOffset, values.length, opCode(op));
    },
    reduceIntoLocal(values: Float32Array, wire: Uint8Array, op: ReduceOp, divisor: number, round: boolean): void {
      const arena = arenaOf(wire);
      const at = arena.place(values);
      arena.kernels[k.reduceLocal](at, wire.byteOffset, values.length, opCode(op), divisor, round ? 1 : 0);
      arena.unplace(values, at);
    },
    decodeInto(wire: Uint8Array, acc: Uint8Array): void {
      const arena = arenaOf(acc);
      arena.kernels[k.decode](addressIn(arena, wire), acc.byteOffset, acc.byteLength / 4);
    },
    accumulate(acc: Uint8Array, wire: Uint8Array, op: ReduceOp): void {
      const arena = arenaOf(acc);
      arena.kernels[k.reduceLocal](acc.byteOffset, addressIn(arena, wire), acc.byteLength / 4, opCode(op), 1, 0);
    },
    finishInto(values: Float32Array, acc: Uint8Array, op: ReduceOp, divisor: number): Uint8Array {
      const arena = arenaOf(acc);
      const n = values.length;
      const at = arena.place(values);
      arena.kernels.combineF32(at, acc.byteOffset, n, opCode(op));
      if (divisor !== 1) arena.kernels.divideF32(at, n, divisor);
      arena.kernels[k.encode](at, acc.byteOffset, n, 1); // the codes overwrite the sums they came from
      arena.unplace(values, at);
      return acc.subarray(0, n * 2);
    },
  };
}

export const bf16Codec = halfCodec('bf16', { encode: 'encodeBf16', decode: 'decodeBf16', reduceWire: 'reduceWireBf16', reduceLocal: 'reduceLocalBf16' });
export const fp16Codec = halfCodec('fp16', { encode: 'encodeFp16', decode: 'decodeFp16', reduceWire: 'reduceWireFp16', reduceLocal: 'reduceLocalFp16' });
