import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { bf16Codec, fp16Codec } from './half-codecs.js';
import { fp32Codec } from './fp32.js';

/** How fp32 values travel on the wire. Accumulation is always in fp32 after decoding. */
export type Codec = 'fp32' | 'bf16' | 'fp16';

/** An elementwise reduction. avg is sum followed by a division by the group size. */
export type ReduceOp = 'sum' | 'max';

/**
 * A wire codec: fp32 values <-> `bytesPerElement`-byte wire values, and the fused steps the ring
 * collectives run on every piece. `values` is caller memory (any Float32Array); `wire` holds
 * exactly values.length wire values and, except for fp32's plain copies, must be a BufferPool
 * buffer (a view into a KernelArena), since the SIMD kernels work there: `values` is used in place
 * when it lives in the same arena (Communicator.allocBuffer), else copied into the arena's scratch
 * area, transformed together with `wire`, and copied back when it changes.
 */
export interface WireCodec {
  readonly name: Codec;
  readonly bytesPerElement: 2 | 4;
  /** wire[i] = enc(values[i]); keep: values[i] = dec(wire[i]) too, so an owner keeps what the others decode. */
  encode(values: Float32Array, wire: Uint8Array, keep: boolean): void;
  /** values[i] = dec(wire[i]) */
  decode(wire: Uint8Array, values: Float32Array): void;
  /** wire[i] = enc(op(dec(wire[i]), values[i])): a ring step that forwards the partial result. */
  reduceIntoWire(values: Float32Array, wire: Uint8Array, op: ReduceOp): void;
  /**
   * values[i] = op(values[i], dec(wire[i])) / divisor: the step that completes this rank's shard.
   * round: then also wire[i] = enc(values[i]) and values[i] = dec(wire[i]) (ready to all-gather).
   */
  reduceIntoLocal(values: Float32Array, wire: Uint8Array, op: ReduceOp, divisor: number, round: boolean): void;
  /** acc[i] = dec(wire[i]), where acc is a pool buffer of fp32 values (wire may be any buffer). */
  decodeInto(wire: Uint8Array, acc: Uint8Array): void;
  /** acc[i] = op(acc[i], dec(wire[i])), where acc is a pool buffer of fp32 values (wire may be any buffer). */
  accumulate(acc: Uint8Array, wire: Uint8Array, op: ReduceOp): void;
  /**
   * values[i] = dec(enc(op(values[i], acc[i]) / divisor)), with the codes written over the start
   * of acc (an fp32 pool buffer), in one staging of values: a finished shard piece, ready to send.
   * Returns the codes (a view of acc's first values.length * bytesPerElement bytes).
   */
  finishInto(values: Float32Array, acc: Uint8Array, op: ReduceOp, divisor: number): Uint8Array;
}

const CODECS: Record<Codec, WireCodec> = { fp32: fp32Codec, bf16: bf16Codec, fp16: fp16Codec };

export function getCodec(name: unknown): WireCodec {
  if (typeof name === 'string' && Object.hasOwn(CODECS, name)) return CODECS[name as Codec];
  throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `unknown codec ${JSON.stringify(name)}`, {
    hint: 'use one of fp32, bf16, fp16',
  });
}

/** The kernels' code for an op. */
export function opCode(op: ReduceOp): number {
  return op === 'max' ? 1 : 0;
}
