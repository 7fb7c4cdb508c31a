import { streamKey, uniformIndex, type BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { encodeChat, type ChatExample } from './chat-task.js';
import type { ChatTemplate } from './chat-template.js';
import { packingStats, packRows } from './packing.js';
import type { TaskExample } from './task-file.js';

/**
 * Task examples as training sequences. Each example is a list of ids with, per id, whether it is
 * trained (a completion token and its end marker, or a token of an assistant turn):
 *
 *   prompt/completion  ids = encode(prompt) ++ encode(completion) ++ [<|endoftext|>]
 *   chat               ids = encode(chat_template(messages)), trained inside assistant turns (chat-task.ts)
 *
 * Unpacked, an example is one row of T positions:
 *
 *   tokens  = ids[0..T)             (padded with <|endoftext|>)
 *   targets = ids[1..T], with -1 where the target is not trained or is padding
 *
 * so the loss covers the trained tokens only (the engine skips targets < 0 in the loss and the
 * gradient, and weights micro-batches by counted targets, exactly, across workers). Packed
 * (packing.ts), a micro-batch's examples share rows, each a segment of its own.
 */
export interface EncodedExample {
  ids: Int32Array;
  /** Per id: 1 when it is a trained target (its prediction from the id before counts in the loss). */
  trained: Uint8Array;
  /** Number of trained ids past the first (the targets this example counts). */
  trainedTargets: number;
  line: number;
}

/** A line of a fine-tuning file: prompt/completion, or a chat conversation. */
export type FinetuneExample = ({ kind: 'completion' } & TaskExample) | ({ kind: 'chat' } & ChatExample);

function encoded(ids: number[], trained: number[], line: number): EncodedExample {
  const t = Uint8Array.from(trained);
  let n = 0;
  for (let i = 1; i < t.length; i++) n += t[i];
  return { ids: Int32Array.from(ids), trained: t, trainedTargets: n, line };
}

function checkLength(e: EncodedExample, seqLen: number, where: string, parts: string): void {
  if (e.ids.length > seqLen + 1) {
    throw new TrainerError('TRAINER_ERR_TASK_TOO_LONG', `${where}: the example has ${e.ids.length} tokens (${parts}); a training row holds ${seqLen + 1}`, {
      hint: `use a longer --seq-len (up to the model's context), or shorten or drop that example (examples are refused, never truncated)`,
      details: { line: e.line, tokens: e.ids.length, seqLen },
    });
  }
}

export function encodeTask(examples: readonly TaskExample[], tokenizer: BpeTokenizer, seqLen: number, name = 'task'): EncodedExample[] {
  return examples.map((e) => {
    const prompt = tokenizer.encode(e.prompt);
    const completion = tokenizer.encode(e.completion);
    const ids = [...prompt, ...completion, tokenizer.eotToken];
    const enc = encoded(ids, ids.map((_, i) => (i >= prompt.length ? 1 : 0)), e.line);
    checkLength(enc, seqLen, `${name}:${e.line}`, `prompt ${prompt.length}, completion ${completion.length}, end marker 1`);
    return enc;
  });
}

/** Encodes prompt/completion and chat lines alike; chat lines need the model's template. */
export function encodeFinetune(examples: readonly FinetuneExample[], tokenizer: BpeTokenizer, seqLen: number, name: string, template: ChatTemplate | undefined): EncodedExample[] {
  return examples.map((e) => {
    if (e.kind === 'completion') return encodeTask([e], tokenizer, seqLen, name)[0];
    if (!template) {
      throw new TrainerError('TRAINER_ERR_CHAT_TEMPLATE', `${name}:${e.line}: a chat line ({"messages": ...}) but the model has no chat template`, {
        hint: 'fine-tune from a Hugging Face folder whose tokenizer_config.json has a chat_template, or write {"prompt", "completion"} lines',
      });
    }
    const { ids, trained } = encodeChat(e, template, tokenizer, `${name}:${e.line}`);
    const enc = encoded(ids, trained, e.line);
    checkLength(enc, seqLen, `${name}:${e.line}`, `${trained.filter((t) => t).length} in assistant turns`);
    return enc;
  });
}

export interface TaskBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
  /** Packed rows: the segment (example) of each position, padding a segment of its own; absent: one example per row. */
  segments?: Int32Array;
  /** Packed rows: each position's example, as its index in the micro-batch's examples (-1: padding). */
  examples?: Int32Array;
}

/** Writes example e's targets at row offset `at` (targets of ids[1..n) that are trained). */
export function placeTargets(e: EncodedExample, targets: Int32Array, at: number, room: number): void {
  const n = Math.min(e.ids.length, room + 1);
  for (let t = 0; t < n - 1; t++) if (e.trained[t + 1]) targets[at + t] = e.ids[t + 1];
}

/** Rows [B, T] from encoded examples, one per row (see the file comment). */
export function rowsOf(examples: readonly EncodedExample[], seqLen: number, pad: number): TaskBatch {
  const B = examples.length;
  const tokens = new Int32Array(B * seqLen).fill(pad);
  const targets = new Int32Array(B * seqLen).fill(-1);
  examples.forEach((e, b) => {
    tokens.set(e.ids.subarray(0, Math.min(e.ids.length, seqLen)), b * seqLen);
    placeTargets(e, targets, b * seqLen, seqLen);
  });
  return { tokens, targets, batch: B };
}

/**
 * Deterministic sampler over examples: example i of step s is example uniform(seed, s, i), so a step's
 * global batch depends only on (seed, step) and data-parallel ranks take contiguous slices of it:
 * the trajectory does not depend on the number of workers (the same rule as BatchSampler).
 * `--global-batch` and `--micro-batch` count examples; with `pack`, a micro-batch's examples share
 * as few rows as first-fit packing gives (packing.ts), so packing changes the compute, not the
 * examples or the loss of a step.
 */
export class TaskBatchSampler {
  constructor(private readonly examples: readonly EncodedExample[], private readonly o: { seqLen: number; globalBatch: number; seed: number; pad: number; pack?: boolean }) {
    if (examples.length === 0) throw new TrainerError('TRAINER_ERR_TASK_EMPTY', 'no training example to sample from', { hint: 'the task file (after the held-out split) must keep at least one example' });
  }

  /** Indices of the examples of step `step`'s global batch. */
  indices(step: number): number[] {
    const key = streamKey(this.o.seed, step);
    return Array.from({ length: this.o.globalBatch }, (_, i) => uniformIndex(key, i, this.examples.length));
  }

  /**
   * What the rows of step `step` hold, over every rank's micro-batches of `microBatch` examples:
   * the share of positions that are an example's (not padding), examples per row, and the
   * examples' positions (tokens that are not padding).
   */
  stepStats(step: number, microBatch: number): { nonPaddingShare: number; examplesPerRow: number; tokens: number } {
    const all = this.indices(step).map((i) => this.examples[i]);
    const s = packingStats(all, this.o.seqLen, microBatch, this.o.pack === true);
    return { nonPaddingShare: s.nonPaddingShare, examplesPerRow: s.examplesPerRow, tokens: s.tokens };
  }

  batch(step: number, slice: { rank: number; dpSize: number; microBatch: number; micro: number }): TaskBatch {
    const perRank = this.o.globalBatch / slice.dpSize;
    const first = slice.rank * perRank + slice.micro * slice.microBatch;
    const key = streamKey(this.o.seed, step);
    const rows = Array.from({ length: slice.microBatch }, (_, i) => this.examples[uniformIndex(key, first + i, this.examples.length)]);
    return this.o.pack ? packRows(rows, this.o.seqLen, this.o.pad) : rowsOf(rows, this.o.seqLen, this.o.pad);
  }
}

/** Held-out examples in file order, in batches of up to `batchSize`, at most `maxBatches`. */
export function* taskValidationBatches(examples: readonly EncodedExample[], seqLen: number, pad: number, batchSize: number, maxBatches = Infinity, pack = false): Generator<TaskBatch> {
  for (let first = 0, n = 0; first < examples.length && n < maxBatches; first += batchSize, n++) {
    const some = examples.slice(first, first + batchSize);
    yield pack ? packRows(some, seqLen, pad) : rowsOf(some, seqLen, pad);
  }
}
