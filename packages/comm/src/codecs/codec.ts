import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { bf16Codec } from './bf16.js';
import { fp16Codec } from './fp16.js';
import { fp32Codec } from './fp32.js';

/** How fp32 values travel on the wire. Accumulation is always in fp32 after decoding. */
export type Codec = 'fp32' | 'bf16' | 'fp16';
/** An elementwise reduction. avg is sum followed by a division by the group size. */
export type ReduceOp = 'sum' | 'max';

/**
 * A wire codec: fp32 values <-> `bytesPerElement`-byte wire values, plus the fused loops the ring
 * collectives run on every received piece. `wire` arguments are 4-byte aligned views into frames
 * (the frame layout guarantees it) holding exactly `local.length` values.
 */
export interface WireCodec {
  readonly name: Codec;
  readonly bytesPerElement: 2 | 4;
  /** wire[i] = enc(src[i]) */
  encode(src: Float32Array, wire: Uint8Array): void;
  /** dst[i] = dec(wire[i]) */
  decode(wire: Uint8Array, dst: Float32Array): void;
  /** wire[i] = enc(op(local[i], dec(wire[i]))): a ring step that forwards the partial result. */
  reduceIntoWire(local: Float32Array, wire: Uint8Array, op: ReduceOp): void;
  /** local[i] = op(local[i], dec(wire[i])): the step that completes this rank's shard. */
  reduceIntoLocal(local: Float32Array, wire: Uint8Array, op: ReduceOp): void;
  /** local[i] = dec(enc(local[i])): so an owner keeps exactly what every other rank decodes. */
  roundTrip(local: Float32Array): void;
}

const CODECS: Record<Codec, WireCodec> = { fp32: fp32Codec, bf16: bf16Codec, fp16: fp16Codec };

export function getCodec(name: unknown): WireCodec {
  if (typeof name === 'string' && Object.hasOwn(CODECS, name)) return CODECS[name as Codec];
  throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `unknown codec ${JSON.stringify(name)}`, {
    hint: 'use one of fp32, bf16, fp16',
  });
}

