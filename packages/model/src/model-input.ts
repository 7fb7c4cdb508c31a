/** Validation of the GPT's public inputs: every bad input is a TrainerError with a hint. */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig } from './config.js';

function bad(message: string, hint: string, details?: Record<string, unknown>): TrainerError {
  return new TrainerError(ModelErrorCode.MODEL_INPUT, message, { hint, details });
}

/** Checks tokens (and targets, and packed rows' segment ids) for `batch` rows and returns the row length T. */
export function checkBatch(config: GPTConfig, tokens: Int32Array, batch: number, targets?: Int32Array, segments?: Int32Array): number {
  if (!(tokens instanceof Int32Array)) throw bad('tokens must be an Int32Array', 'pass Int32Array.from(ids)');
  if (!Number.isInteger(batch) || batch <= 0) {
    throw bad(`batch must be a positive integer, got ${String(batch)}`, 'pass the number of sequences in tokens');
  }
  if (tokens.length === 0 || tokens.length % batch !== 0) {
    throw bad(`tokens.length ${tokens.length} is not a positive multiple of batch ${batch}`, 'tokens is [batch * T] row-major', {
      length: tokens.length,
      batch,
    });
  }
  const T = tokens.length / batch;
  if (T > config.contextLength) {
    throw bad(`sequence length ${T} exceeds contextLength ${config.contextLength}`, 'crop sequences to the model context', {
      T,
      contextLength: config.contextLength,
    });
  }
  const V = config.vocabSize;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t < 0 || t >= V) {
      throw bad(`token id ${t} at position ${i} is outside [0, ${V})`, 'tokenize with a vocabulary no larger than vocabSize', { index: i, id: t });
    }
  }
  if (targets !== undefined) {
    if (!(targets instanceof Int32Array) || targets.length !== tokens.length) {
      throw bad(`targets must be an Int32Array of length ${tokens.length}`, 'targets[i] is the id following tokens[i] (negative = ignored)');
    }
    for (let i = 0; i < targets.length; i++) {
      if (targets[i] >= V) {
        throw bad(`target id ${targets[i]} at position ${i} is outside [0, ${V})`, 'use a negative target to mask a position', { index: i, id: targets[i] });
      }
    }
  }
  if (segments !== undefined && (!(segments instanceof Int32Array) || segments.length !== tokens.length)) {
    throw bad(`segments must be an Int32Array of length ${tokens.length}`, 'segments[i] is the id of the sequence token i belongs to (packed rows)');
  }
  return T;
}

export function checkGrads(grads: Float32Array, totalSize: number, gradScale: number): void {
  if (!(grads instanceof Float32Array) || grads.length !== totalSize) {
    throw bad(`grads must be a Float32Array of length ${totalSize}`, 'allocate new Float32Array(model.layout.totalSize)', {
      length: (grads as { length?: number } | null)?.length,
    });
  }
  if (!Number.isFinite(gradScale)) throw bad(`gradScale must be finite, got ${gradScale}`, 'use e.g. 1 / microBatches');
}

export function checkParams(flat: Float32Array, totalSize: number): void {
  if (!(flat instanceof Float32Array) || flat.length !== totalSize) {
    throw bad(`parameter vector must be a Float32Array of length ${totalSize}`, 'build it with initParams(config, seed) for the same config', {
      length: (flat as { length?: number } | null)?.length,
    });
  }
}

export interface GenerateOptions {
  /** Number of tokens to append. */
  maxNewTokens: number;
  /** Softmax temperature; 0 = greedy (default 1). */
  temperature?: number;
  /** Sample only among the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Seed of the sampling PRNG (default 0): the same seed gives the same tokens. */
  seed?: number;
  /** Stop after generating this id (it is included in the result). */
  stopToken?: number;
}

export function checkGenerate(config: GPTConfig, prompt: number[], opts: GenerateOptions): void {
  if (!Array.isArray(prompt) || prompt.length === 0) throw bad('prompt must be a non-empty array of token ids', 'start from e.g. [0]');
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw bad(`prompt token ${String(id)} is outside [0, ${config.vocabSize})`, 'tokenize with a vocabulary no larger than vocabSize');
    }
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw bad(`maxNewTokens must be a non-negative integer, got ${String(opts.maxNewTokens)}`, 'e.g. maxNewTokens: 50');
  }
  const temp = opts.temperature ?? 1;
  if (!Number.isFinite(temp) || temp < 0) throw bad(`temperature must be >= 0, got ${temp}`, '0 = greedy, 1 = plain sampling');
  if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 0)) {
    throw bad(`topK must be a non-negative integer, got ${String(opts.topK)}`, 'use 0 (or omit topK) to sample from the whole vocabulary');
  }
}
