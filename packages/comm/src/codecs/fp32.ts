import type { ReduceOp, WireCodec } from './codec.js';
import { combineInto, f32View } from './loops.js';

/** fp32 on the wire: a byte copy; the reductions are the plain add (or max) loops. */
export const fp32Codec: WireCodec = {
  name: 'fp32',
  bytesPerElement: 4,
  encode(src: Float32Array, wire: Uint8Array): void {
    f32View(wire, src.length).set(src);
  },
  decode(wire: Uint8Array, dst: Float32Array): void {
    dst.set(f32View(wire, dst.length));
  },
  reduceIntoWire(local: Float32Array, wire: Uint8Array, op: ReduceOp): void {
    combineInto(f32View(wire, local.length), local, op);
  },
  reduceIntoLocal(local: Float32Array, wire: Uint8Array, op: ReduceOp): void {
    combineInto(local, f32View(wire, local.length), op);
  },
  roundTrip(): void {},
};
