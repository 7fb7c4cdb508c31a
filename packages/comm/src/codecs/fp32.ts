import { KernelArena } from '../kernels/kernel-arena.js';
import { opCode, type ReduceOp, type WireCodec } from './codec.js';

function f32View(bytes: Uint8Array, length: number): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

/** The arena of a wire buffer the kernels must work on. */
export function arenaOf(wire: Uint8Array): KernelArena {
  const arena = KernelArena.of(wire);
  if (!arena) throw new RangeError('wire buffer is not in a kernel arena (acquire it from the BufferPool)');
  return arena;
}

/**
 * Where the kernels of `arena` find `wire`: at its own offset when it lives there, else in a copy
 * in the arena's scratch area (a buffer of another arena, or no arena at all).
 */
export function addressIn(arena: KernelArena, wire: Uint8Array): number {
  if (KernelArena.of(wire) === arena) return wire.byteOffset;
  new Uint8Array(arena.scratchF32.buffer, arena.scratch, wire.byteLength).set(wire);
  return arena.scratch;
}

/**
 * fp32 on the wire: encode and decode are byte copies; the reductions run in the SIMD kernels
 * (4 lanes), on the caller's values in place when they live in the wire buffer's arena
 * (Communicator.allocBuffer), else on a copy in its scratch area.
 */
export const fp32Codec: WireCodec = {
  name: 'fp32',
  bytesPerElement: 4,
  encode(values: Float32Array, wire: Uint8Array): void {
    f32View(wire, values.length).set(values);
  },
  decode(wire: Uint8Array, values: Float32Array): void {
    values.set(f32View(wire, values.length));
  },
  reduceIntoWire(values: Float32Array, wire: Uint8Array, op: ReduceOp): void {
    const arena = arenaOf(wire);
    arena.kernels.combineF32(wire.byteOffset, arena.place(values), values.length, opCode(op));
  },
  reduceIntoLocal(values: Float32Array, wire: Uint8Array, op: ReduceOp, divisor: number, round: boolean): void {
    const arena = arenaOf(wire);
    const at = arena.place(values);
    arena.kernels.combineF32(at, wire.byteOffset, values.length, opCode(op));
    if (divisor !== 1) arena.kernels.divideF32(at, values.length, divisor);
    arena.unplace(values, at);
    if (round) f32View(wire, values.length).set(values); // fp32 rounds nothing; the wire just holds the result
  },
  decodeInto(wire: Uint8Array, acc: Uint8Array): void {
    acc.set(wire);
  },
  accumulate(acc: Uint8Array, wire: Uint8Array, op: ReduceOp): void {
    const arena = arenaOf(acc);
    arena.kernels.combineF32(acc.byteOffset, addressIn(arena, wire), acc.byteLength / 4, opCode(op));
  },
  finishInto(values: Float32Array, acc: Uint8Array, op: ReduceOp, divisor: number): Uint8Array {
    fp32Codec.reduceIntoLocal(values, acc, op, divisor, true);
    return acc.subarray(0, values.length * 4);
  },
};

/** Most contributions foldContributions sums in one pass (the kernel's a, b, c). */
export const MAX_FOLDED = 3;

/**
 * values[i] = op(...op(op(w0[i], w1[i]), w2[i])..., values[i]) / divisor for up to MAX_FOLDED fp32
 * pool buffers `wires`: the contributions to a piece in their fixed order, our own values last,
 * in one pass over memory. Returns false (and does nothing) unless all wires share one arena.
 */
export function foldContributions(values: Float32Array, wires: readonly Uint8Array[], op: ReduceOp, divisor: number): boolean {
  const arena = KernelArena.of(wires[0]);
  if (!arena || wires.length > MAX_FOLDED || wires.some((w) => KernelArena.of(w) !== arena)) return false;
  const at = arena.place(values);
  const [a, b, c] = wires.map((w) => w.byteOffset);
  arena.kernels.foldF32(at, a, b ?? 0, c ?? 0, wires.length, values.length, opCode(op), divisor);
  arena.unplace(values, at);
  return true;
}
