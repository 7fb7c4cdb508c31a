import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import type { TokenArray } from './internal/token-buffer.js';
import { streamKey, uniformIndex } from './prng.js';

export interface BatchSamplerOptions {
  /** The token stream to sample from (e.g. TokenSplit.train). */
  tokens: TokenArray;
  /** T: tokens per sequence; each sample reads T + 1 tokens (inputs and shifted targets). */
  contextLength: number;
  /** Sequences per optimizer step, over all data-parallel ranks and micro-batches. */
  globalBatch: number;
  seed: number;
}

export interface MicroBatchSlice {
  /** This rank's index in the data-parallel group, in [0, dpSize). */
  rank: number;
  dpSize: number;
  /** Sequences per micro-batch on one rank. */
  microBatch: number;
  /** Which micro-batch of this rank's share, in [0, globalBatch / (dpSize * microBatch)). */
  micro: number;
}

/** Model inputs and next-token targets, row-major [batch, T]. */
export interface TokenBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
}

function optionError(message: string, hint: string, details?: Record<string, unknown>): TrainerError {
  return new TrainerError(DataErrorCode.DATA_OPTION, message, { hint, details });
}

function checkInt(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw optionError(`${name} must be an integer >= ${min}, got ${value}`, `pass a valid ${name}`, { [name]: value });
  }
}

/**
 * Deterministic random sampler: the global batch of step s is a function of (seed, s) alone.
 * Sample i of step s starts at uniform(seed, s, i) in [0, N - T) and covers tokens
 * [start, start + T + 1). Ranks take contiguous slices of the global batch, so the samples (and
 * with them the training trajectory) do not depend on how many workers share the batch, and a
 * run resumed at step s sees the same data as one that never stopped.
 */
export class BatchSampler {
  readonly contextLength: number;
  readonly globalBatch: number;
  readonly seed: number;
  private readonly data: TokenArray;
  /** Number of valid start offsets: N - T. */
  private readonly startCount: number;

  constructor(opts: BatchSamplerOptions) {
    checkInt('contextLength', opts.contextLength, 1);
    checkInt('globalBatch', opts.globalBatch, 1);
    if (!Number.isSafeInteger(opts.seed)) throw optionError(`seed must be a safe integer, got ${opts.seed}`, 'pass an integer seed, e.g. 1337');
    const need = opts.contextLength + 1;
    if (opts.tokens.length < need) {
      throw new TrainerError(DataErrorCode.DATA_TOO_SHORT, `${opts.tokens.length} tokens are too few for one sequence of context ${opts.contextLength} (need ${need})`, {
        hint: 'use a smaller context length or a bigger corpus',
        details: { tokens: opts.tokens.length, contextLength: opts.contextLength },
      });
    }
    if (opts.tokens.length - opts.contextLength > 0x7fffffff) {
      throw optionError(`${opts.tokens.length} tokens exceed the sampler's limit of 2^31 start offsets`, 'shard the corpus into smaller token files');
    }
    this.data = opts.tokens;
    this.contextLength = opts.contextLength;
    this.globalBatch = opts.globalBatch;
    this.seed = opts.seed;
    this.startCount = opts.tokens.length - opts.contextLength;
  }

  /** Start offsets of the global batch's `globalBatch` sequences for `step`. */
  starts(step: number): Int32Array {
    return this.startsOf(step, 0, this.globalBatch);
  }

  /**
   * This data-parallel rank's micro-batch: samples [rank * perRank + micro * microBatch, + microBatch)
   * of the global batch, perRank = globalBatch / dpSize.
   */
  batch(step: number, slice: MicroBatchSlice): TokenBatch {
    const { rank, dpSize, microBatch, micro } = slice;
    checkInt('dpSize', dpSize, 1);
    checkInt('microBatch', microBatch, 1);
    if (this.globalBatch % (dpSize * microBatch) !== 0) {
      throw new TrainerError(
        DataErrorCode.BATCH_INDIVISIBLE,
        `global batch ${this.globalBatch} is not divisible by dpSize ${dpSize} x microBatch ${microBatch} = ${dpSize * microBatch}`,
        { hint: `choose a global batch that is a multiple of ${dpSize * microBatch}, or change the micro-batch size or the number of data-parallel workers`, details: { globalBatch: this.globalBatch, dpSize, microBatch } },
      );
    }
    const perRank = this.globalBatch / dpSize;
    const microSteps = perRank / microBatch;
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= dpSize) throw optionError(`rank ${rank} is outside [0, ${dpSize})`, 'pass the data-parallel rank of this worker', { rank, dpSize });
    if (!Number.isSafeInteger(micro) || micro < 0 || micro >= microSteps) throw optionError(`micro-batch index ${micro} is outside [0, ${microSteps})`, `a step has ${microSteps} micro-batches per rank`, { micro, microSteps });
    const starts = this.startsOf(step, rank * perRank + micro * microBatch, microBatch);
    return windowsToBatch(this.data, starts, this.contextLength);
  }

  private startsOf(step: number, first: number, count: number): Int32Array {
    checkInt('step', step, 0);
    const key = streamKey(this.seed, step);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) out[i] = uniformIndex(key, first + i, this.startCount);
    return out;
  }
}

/** Copies windows [start, start + T + 1) into inputs [B, T] and targets [B, T] (shifted by one). */
function windowsToBatch(data: TokenArray, starts: ArrayLike<number>, T: number): TokenBatch {
  const B = starts.length;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = starts[b];
    tokens.set(data.subarray(start, start + T), b * T);
    targets.set(data.subarray(start + 1, start + T + 1), b * T);
  }
  return { tokens, targets, batch: B };
}

/**
 * Deterministic, non-overlapping evaluation windows: window k covers tokens [k*T, k*T + T + 1)
 * (consecutive windows share only the boundary token, as a target of one and input of the next),
 * so every token but the first is predicted exactly once. Yields batches of up to `batchSize`
 * windows (the last may be smaller), at most `maxBatches` of them.
 */
export function* validationBatches(tokens: TokenArray, contextLength: number, batchSize: number, maxBatches = Infinity): Generator<TokenBatch> {
  checkInt('contextLength', contextLength, 1);
  checkInt('batchSize', batchSize, 1);
  if (!(maxBatches >= 1)) throw optionError(`maxBatches must be >= 1, got ${maxBatches}`, 'omit it to evaluate the whole split');
  const windows = Math.floor((tokens.length - 1) / contextLength);
  if (windows < 1) {
    throw new TrainerError(DataErrorCode.DATA_TOO_SHORT, `${tokens.length} validation tokens are too few for one window of context ${contextLength} (need ${contextLength + 1})`, {
      hint: 'use a smaller context length, a larger valFraction, or a bigger corpus',
      details: { tokens: tokens.length, contextLength },
    });
  }
  for (let first = 0, n = 0; first < windows && n < maxBatches; first += batchSize, n++) {
    const count = Math.min(batchSize, windows - first);
    const starts = Array.from({ length: count }, (_, i) => (first + i) * contextLength);
    yield windowsToBatch(tokens, starts, contextLength);
  }
}
