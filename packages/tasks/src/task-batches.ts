import { streamKey, uniformIndex, type BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import type { TaskExample } from './task-file.js';

/**
 * Task examples as training sequences. Each example is one row of T positions:
 *
 *   ids     = encode(prompt) ++ encode(completion) ++ [<|endoftext|>]
 *   tokens  = ids[0..T)             (padded with <|endoftext|>)
 *   targets = ids[1..T], with -1 where the target is a prompt token or padding
 *
 * so the loss covers the completion and its end marker only (the engine skips targets < 0 in the
 * loss and the gradient, and weights micro-batches by counted targets, exactly, across workers).
 * Rows are padded rather than packed: an example never attends to another.
 */
export interface EncodedExample {
  ids: Int32Array;
  /** Tokens of the prompt (the first target counted is ids[promptLength]). */
  promptLength: number;
  line: number;
}

export function encodeTask(examples: readonly TaskExample[], tokenizer: BpeTokenizer, seqLen: number, name = 'task'): EncodedExample[] {
  return examples.map((e) => {
    const prompt = tokenizer.encode(e.prompt);
    const completion = tokenizer.encode(e.completion);
    const length = prompt.length + completion.length + 1;
    if (length > seqLen + 1) {
      throw new TrainerError('TRAINER_ERR_TASK_TOO_LONG', `${name}:${e.line}: the example has ${length} tokens (prompt ${prompt.length}, completion ${completion.length}, end marker 1); a training row holds ${seqLen + 1}`, {
        hint: `use a longer --seq-len (up to the model's context), or shorten or drop that example`,
        details: { line: e.line, tokens: length, seqLen },
      });
    }
    return { ids: Int32Array.from([...prompt, ...completion, tokenizer.eotToken]), promptLength: prompt.length, line: e.line };
  });
}

export interface TaskBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
}

/** Rows [B, T] from encoded examples (see the file comment). */
export function rowsOf(examples: readonly EncodedExample[], seqLen: number, pad: number): TaskBatch {
  const B = examples.length;
  const tokens = new Int32Array(B * seqLen).fill(pad);
  const targets = new Int32Array(B * seqLen).fill(-1);
  examples.forEach((e, b) => {
    const n = Math.min(e.ids.length, seqLen + 1);
    tokens.set(e.ids.subarray(0, Math.min(n, seqLen)), b * seqLen);
    for (let t = Math.max(0, e.promptLength - 1); t < n - 1; t++) targets[b * seqLen + t] = e.ids[t + 1];
  });
  return { tokens, targets, batch: B };
}

/**
 * Deterministic sampler over examples: row i of step s is example uniform(seed, s, i), so a step's
 * global batch depends only on (seed, step) and data-parallel ranks take contiguous slices of it:
 * the trajectory does not depend on the number of workers (the same rule as BatchSampler).
 */
export class TaskBatchSampler {
  constructor(private readonly examples: readonly EncodedExample[], private readonly o: { seqLen: number; globalBatch: number; seed: number; pad: number }) {
    if (examples.length === 0) throw new TrainerError('TRAINER_ERR_TASK_EMPTY', 'no training example to sample from', { hint: 'the task file (after the held-out split) must keep at least one example' });
  }

  /** Indices of the examples of step `step`'s global batch. */
  indices(step: number): number[] {
    const key = streamKey(this.o.seed, step);
    return Array.from({ length: this.o.globalBatch }, (_, i) => uniformIndex(key, i, this.examples.length));
  }

  batch(step: number, slice: { rank: number; dpSize: number; microBatch: number; micro: number }): TaskBatch {
    const perRank = this.o.globalBatch / slice.dpSize;
    const first = slice.rank * perRank + slice.micro * slice.microBatch;
    const key = streamKey(this.o.seed, step);
    const rows = Array.from({ length: slice.microBatch }, (_, i) => this.examples[uniformIndex(key, first + i, this.examples.length)]);
    return rowsOf(rows, this.o.seqLen, this.o.pad);
  }
}

/** Held-out examples in file order, in batches of up to `batchSize`, at most `maxBatches`. */
export function* taskValidationBatches(examples: readonly EncodedExample[], seqLen: number, pad: number, batchSize: number, maxBatches = Infinity): Generator<TaskBatch> {
  for (let first = 0, n = 0; first < examples.length && n < maxBatches; first += batchSize, n++) {
    yield rowsOf(examples.slice(first, first + batchSize), seqLen, pad);
  }
}
