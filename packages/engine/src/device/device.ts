/**
 * Where a rank's model state lives, and everything the step does to it.
 *
 * A rank's state is a set of flat vectors, one per parameter unit and kind: the fp32 master
 * weights of its own pieces, AdamW's m and v, its gradient pieces or full unit gradients. The
 * engine never touches their elements; it asks a Device, which holds them where the kernel set
 * computes:
 *
 *   HostDevice (host-device.ts)  host arrays (fp32, or 16-bit codes), for the 'host' kernel set
 *                                (wasm and cpu: the kernels read host memory anyway)
 *   TfDevice   (tf-device.ts)    TF.js tensors on the active backend, for the 'tf' kernel set
 *                                (CUDA through tfjs-node-gpu; wasm or cpu standing in for it)
 *
 * The contract that matters on a GPU: only what a collective sends leaves the device, and only
 * what it receives comes back. Every method that reads values to the host is async (a device
 * read is awaited, never synchronous), and the collectives below move the fewest bytes the
 * collective allows (a reduce-scatter never downloads this rank's own piece, an fp32 all-gather
 * never uploads it), so per step host<->device bytes stay within the bytes the network carries.
 *
 * Ownership: a method that returns a vector in place of one it was given *consumes* the given
 * one (the caller must use the result; HostDevice usually returns the same object, TfDevice a
 * new tensor after disposing the old). Methods that only read leave their arguments alone.
 */
import type { Range } from '../adamw.js';
import type { Precision } from '../precision/vector-store.js';
import type { CollectiveGroup, GradBuffer, ReduceGroup, TensorLike, WireCodec } from '../interfaces.js';

export type { Precision, Range };

/** One AdamW update's coefficients (adamw.ts explains the update). */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^t. */
  bc1: number;
  bc2: number;
  /** Gradients are multiplied by this first (clipping, and undoing the loss scale). */
  gradFactor: number;
}

/** The optimizer state of one piece: fp32 master weights and AdamW's moments. */
export interface PieceOptimizerState<V> {
  master: V;
  m: V;
  v: V;
}

/** The outer optimizer's state of one piece (DiLoCo): the parameters at the last sync and the momentum buffer. */
export interface OuterPieceState<V> {
  anchor: V;
  momentum: V;
}

/** One outer step's hyperparameters: the averaged pseudo-gradient is delta x scale. */
export interface OuterStep {
  lr: number;
  momentum: number;
  scale: number;
}

/** What compute accepts to build a unit's parameters from: host values or a 1-D backend tensor. */
export type ComputeValues = Float32Array | TensorLike;

export interface Device<V, S = unknown> {
  readonly kind: 'host' | 'tf';

  /** n zeros, held in `precision` (a 16-bit vector rounds every value stored in it). */
  zeros(length: number, precision: Precision): V;
  /** A vector holding `values` (rounded to `precision`); the array may be adopted: do not reuse it. */
  fromHost(values: Float32Array, precision: Precision): V;
  /** A fresh fp32 host copy of [start, end) (TfDevice: one awaited download). */
  toHost(v: V, start?: number, end?: number): Promise<Float32Array>;
  length(v: V): number;
  bytes(v: V): number;
  /** [start, end) as a new vector. */
  slice(v: V, start: number, end: number): V;
  /** acc + x, fp32 arithmetic, one rounding to acc's precision. Consumes acc, not x. */
  add(acc: V, x: V): V;
  /** `v` held in `precision` (rounded once); consumes v. */
  toPrecision(v: V, precision: Precision): V;
  /** `v` rounded to `precision`, as a new fp32 vector (the working copy of a master). */
  rounded(v: V, precision: Precision): V;
  /** What the model builds a unit's compute parameters from (valid until `v` changes or is disposed). */
  computeValues(v: V): ComputeValues;
  dispose(v: V): void;
  /** Frees what the device keeps between calls (cached constants), when its trainer is done. */
  release(): void;
  /**
   * Readies the collectives for `codec` before the first step (TfDevice: checks once per backend
   * that it computes the 16-bit wire codes exactly, so they can cross the boundary as 2 bytes).
   */
  prepareWire(codec: WireCodec): Promise<void>;
  /** Set when a 16-bit codec's values must cross the host boundary as fp32 (and why), for the log. */
  readonly wireFallback: string | null;

  /** A zeroed gradient buffer of `length` elements for backward to add into (gradient-buffers.ts). */
  gradBuffer(length: number): GradBuffer;
  /** The buffer's values as a vector in `precision`; consumes the buffer. */
  flatten(buf: GradBuffer, precision: Precision): V;
  /** Frees a buffer without reading it (an aborted pass). */
  dropGradBuffer(buf: GradBuffer): void;
  /** Bytes of the gradient buffers the device keeps (in use or pooled for reuse). */
  readonly gradBufferBytes: number;

  /** Sum of squares of [start, end), left on the device (a partial to combine with `total`). */
  sumOfSquares(v: V, start: number, end: number): S;
  /** The sum of partials as one number: a single device read (consumes the partials). */
  total(parts: readonly S[]): Promise<number>;

  /**
   * One AdamW update of a piece in place of its state (fields may be replaced): `decay` lists the
   * piece-relative ranges that receive weight decay (2-D weights); grad is multiplied by
   * h.gradFactor first.
   */
  adamw(state: PieceOptimizerState<V>, grad: V, decay: readonly Range[], h: AdamWStep): void;

  /** a - b, fp32, as a new vector (consumes neither). */
  difference(a: V, b: V): V;
  /**
   * The outer optimizer's update (DiLoCo; PyTorch's SGD with Nesterov momentum, no dampening) in
   * place of its state (fields may be replaced); consumes delta:
   *   g = delta x scale;  momentum = mu momentum + g;  anchor = anchor - lr (g + mu momentum)
   */
  outerNesterov(state: OuterPieceState<V>, delta: V, h: OuterStep): void;

  /** In-place all-reduce (sum) over `group`; consumes v. */
  allReduce(v: V, group: ReduceGroup, codec: WireCodec): Promise<V>;
  /** Sum over `group` of range [start, end) only; consumes v. */
  allReduceRange(v: V, start: number, end: number, group: ReduceGroup, codec: WireCodec): Promise<V>;
  /**
   * This rank's piece (comm's shardRange of the vector) of the sum over `group`, as a new vector
   * held in `precision`. Consumes v (its memory may serve as the collective's buffer).
   */
  reduceScatter(v: V, group: CollectiveGroup, codec: WireCodec, precision: Precision): Promise<V>;
  /**
   * Every rank's piece concatenated (laid out by shardRange(length)); `own` is this rank's. With a
   * 16-bit codec the whole result is what the wire carried (this rank's piece rounded as the
   * others received it), so every rank holds the same values.
   */
  allGather(own: V, length: number, group: CollectiveGroup, codec: WireCodec): Promise<V>;
}
