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

/** A parameter of the flat vector (a subset of @trainer/model's ParamEntry). */
export interface FlatParam {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** A model whose parameters live in one flat fp32 vector and whose backward adds into one. */
export interface TrainableModel {
  readonly layout: { entries: FlatParam[]; totalSize: number };
  setParams(flat: Float32Array): void;
  forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, grads: Float32Array, gradScale?: number): LossResult;
  loss(tokens: Int32Array, targets: Int32Array, batch: number): LossResult;
}
