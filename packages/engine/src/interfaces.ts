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
 * A model driven one segment at a time over contiguous parameter units (@trainer/model's
 * GPTSegments: the whole model, or one pipeline stage of it, for one tensor-parallel rank).
 * A = activation, P = one unit's uploaded parameters. A segment may await inside (tensor
 * parallelism all-reduces within a block).
 */
export interface SegmentedModel<A extends Disposable = Disposable, P extends Disposable = Disposable> {
  readonly units: readonly { name: string; start: number; end: number }[];
  readonly segments: readonly SegmentSpec[];
  readonly totalSize: number;
  readonly decayRanges: readonly { start: number; end: number }[];
  upload(unit: number, values: Float32Array): P;
  /** Segment 0 reads the input activation (null on the first pipeline stage: it reads mb.tokens). */
  forward(seg: number, params: ReadonlyMap<number, P>, x: A | null, mb: MicroBatch, train: boolean): Awaitable<{ y: A | null; saved: SavedState; loss?: LossResult }>;
  backward(seg: number, params: ReadonlyMap<number, P>, saved: SavedState, dy: A | null, gradScale: number, grads: ReadonlyMap<number, Float32Array>): Awaitable<A | null>;
}
