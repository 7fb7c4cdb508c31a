/**
 * What the engine needs from its collaborators, stated structurally so the engine can be tested
 * with small fakes and stays independent of how processes and models are built.
 * `@trainer/comm`'s ProcessGroup and `@trainer/model`'s GPT satisfy these as they are.
 */

export type WireCodec = 'fp32' | 'bf16' | 'fp16';

/** A group of ranks that reduce together (the data-parallel group). */
export interface ReduceGroup {
  /** This process's rank within the group. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly size: number;
  /** In-place all-reduce over every rank of the group. */
  allReduce(buf: Float32Array, opts?: { op?: 'sum' | 'avg' | 'max'; codec?: WireCodec }): Promise<void>;
}

/** One micro-batch: `batch` sequences of `tokens.length / batch` positions, row-major. */
export interface MicroBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
  /**
   * Packed rows (fine-tuning's packing): a sequence id per token, so that attention stays within
   * each sequence and positions restart at each; it travels with the micro-batch to every
   * segment, pipeline stage and recomputation. Absent: one sequence per row.
   */
  segments?: Int32Array;
  /**
   * Where the micro-batch sits: the optimizer step and the index of its first row in the step's
   * global batch (the data-parallel rank's offset plus the micro-batches before it). Keys LoRA
   * dropout's mask, so every layout drops the same elements; needed only with --lora-dropout.
   */
  origin?: { step: number; row: number };
  /**
   * Packed rows: each position's example, as an index from origin.row (-1: padding). LoRA dropout
   * then keys a position by its example's global index and its position in the example, so a
   * packed run drops what an unpacked one drops.
   */
  examples?: Int32Array;
}

export interface LossResult {
  /** Mean next-token cross-entropy over the counted targets. */
  loss: number;
  /** Number of counted (non-masked) targets. */
  count: number;
}

/** A group that can also reduce-scatter and all-gather (ZeRO). Shards follow comm's shardRange. */
export interface CollectiveGroup extends ReduceGroup {
  reduceScatter(buf: Float32Array, opts?: { op?: 'sum' | 'avg'; codec?: WireCodec }): Promise<Float32Array>;
  allGather(shard: Float32Array, totalLength: number, opts?: { codec?: WireCodec }): Promise<Float32Array>;
}

/** Anything the model allocates that the engine must free (TF.js tensors, unit parameter sets). */
export interface Disposable {
  dispose(): void;
}

export interface SegmentSpec {
  name: string;
  forwardUnits: number[];
  backwardUnits: number[];
  gradUnits: number[];
  /** Activation checkpointing may drop this segment's saved state and recompute it (blocks). */
  recomputable?: boolean;
}

export type Awaitable<T> = T | Promise<T>;

/** What a segment's forward keeps for its backward. */
export interface SavedState {
  release(): void;
}

/**
 * A unit's gradient as backward builds it: the model adds each parameter's gradient at its
 * unit-relative flat offset. Values are host arrays (host kernels) or backend tensors (tf
 * kernels; add() takes ownership of them). A buffer held in host memory also exposes it as
 * `host`, for layers that scatter-add in place (the embedding).
 */
export interface GradBuffer {
  add(offset: number, g: Float32Array | TensorLike): void;
  readonly host?: Float32Array;
}

/** The parts of a TF.js tensor the engine's interfaces need (the engine owns no model tensors). */
export interface TensorLike {
  readonly shape: readonly number[];
  readonly size: number;
  dispose(): void;
}

/** A micro-batch's loss, read from the device when the step needs it (not at once: no stall). */
export interface PendingLoss {
  /** The mean over counted targets. */
  loss: Promise<number>;
  count: number;
}

/**
 * A model driven one segment at a time over contiguous parameter units (@trainer/model's
 * GPTSegments: the whole model, or one pipeline stage of it, for one tensor-parallel rank).
 * A = activation, P = one unit's compute parameters. A segment may await inside (tensor
 * parallelism all-reduces within a block).
 */
export interface SegmentedModel<A extends Disposable = Disposable, P extends Disposable = Disposable> {
  readonly units: readonly { name: string; start: number; end: number }[];
  readonly segments: readonly SegmentSpec[];
  readonly totalSize: number;
  readonly decayRanges: readonly { start: number; end: number }[];
  /** A unit's compute parameters from its full flat values (a host array, copied, or a 1-D backend tensor, not kept). */
  unitParams(unit: number, values: Float32Array | TensorLike): P;
  /** Segment 0 reads the input activation (null on the first pipeline stage: it reads mb.tokens). */
  forward(seg: number, params: ReadonlyMap<number, P>, x: A | null, mb: MicroBatch, train: boolean): Awaitable<{ y: A | null; saved: SavedState; loss?: PendingLoss }>;
  backward(seg: number, params: ReadonlyMap<number, P>, saved: SavedState, dy: A | null, gradScale: number, grads: ReadonlyMap<number, GradBuffer>): Awaitable<A | null>;
}
