import { BpeTokenizer } from '@trainer/data';
import type { MicroBatch } from '@trainer/engine';
import { TrainerError } from '@trainer/errors';
import { initLocalRange, type LocalParamEntry } from '@trainer/model';
import { ChatTemplate, encodeFinetune, loadFinetuneFile, splitByPrompt, TaskBatchSampler, taskValidationBatches, type ChatTemplateSpec, type EncodedExample } from '@trainer/tasks';
import type { TrainJob } from '../job-spec.js';
import type { FlatTensor } from '@trainer/checkpoint';
import { openPretrainedRanges } from './pretrained-ranges.js';

/**
 * A worker's side of fine-tuning: the task's batches (loss on completion tokens only, rows drawn
 * by (seed, step) so the trajectory does not depend on the worker count) and the initial
 * parameters (the pretrained model's, checked against the job's config).
 */
export interface TaskSplit {
  train: EncodedExample[];
  val: EncodedExample[];
}

/**
 * Reads, encodes and splits the task file exactly as the coordinator checked it: prompt/completion
 * lines, and chat lines rendered with the model's chat template (loss on assistant turns only).
 */
export async function encodeTaskSplit(path: string, valFraction: number, tokenizer: BpeTokenizer, seqLen: number, chatTemplate?: ChatTemplateSpec): Promise<TaskSplit> {
  const examples = await loadFinetuneFile(path);
  const template = chatTemplate ? new ChatTemplate(chatTemplate) : undefined;
  const { train, heldOut } = splitByPrompt(examples, valFraction);
  return { train: encodeFinetune(train, tokenizer, seqLen, path, template), val: encodeFinetune(heldOut, tokenizer, seqLen, path, template) };
}

export interface TaskDataSource {
  batch(step: number, slice: { rank: number; dpSize: number; microBatch: number; micro: number }): MicroBatch;
  valBatches: ((microBatch: number, count: number) => Iterable<MicroBatch>) | undefined;
  /** Step `step`'s rows: the share of positions that are not padding, examples per row, the examples' tokens. */
  stepStats(step: number, microBatch: number): { nonPaddingShare: number; examplesPerRow: number; tokens: number };
}

export async function openTaskData(job: TrainJob, tokenizer: BpeTokenizer | undefined): Promise<TaskDataSource> {
  if (job.data.source !== 'task') throw new TrainerError('TRAINER_ERR_PROTOCOL', 'openTaskData called for a job without a task');
  if (!tokenizer) throw new TrainerError('TRAINER_ERR_PROTOCOL', 'the job fine-tunes on a task but no tokenizer came with it');
  const { pack } = job.data;
  const split = await encodeTaskSplit(job.data.path, job.data.valFraction, tokenizer, job.seqLen, job.data.chatTemplate);
  const pad = tokenizer.eotToken;
  const sampler = new TaskBatchSampler(split.train, { seqLen: job.seqLen, globalBatch: job.globalBatch, seed: job.seed, pad, pack });
  return {
    batch: (step, slice) => sampler.batch(step, slice),
    stepStats: (step, microBatch) => sampler.stepStats(step, microBatch),
    valBatches: split.val.length ? (microBatch, count) => taskValidationBatches(split.val, job.seqLen, pad, microBatch, count, pack) : undefined,
  };
}

/**
 * Reads the parameters training starts from, by ranges of this rank's flat layout (`entries`:
 * its tensor-parallel shard of its pipeline stage): a fresh init computes exactly the range asked
 * for (counter-based, init.ts), a pretrained model (fine-tuning) is read by the same ranges from
 * its file or checkpoint (pretrained-ranges.ts), so no rank ever holds more than it keeps.
 * `done()` closes the files.
 */
export async function initialParamsReader(job: TrainJob, model: { layout: { entries: readonly LocalParamEntry[] } }, tensors: readonly FlatTensor[]): Promise<{ read: (kind: 'params' | 'm' | 'v', start: number, end: number) => Promise<Float32Array>; done(): Promise<void> }> {
  if (!job.init) return { read: async (_kind, start, end) => initLocalRange(job.model, job.seed, model.layout.entries, start, end), done: async () => undefined };
  const ranges = await openPretrainedRanges(job.init, job.model, tensors);
  return { read: (_kind, start, end) => ranges.read(start, end), done: () => ranges.close() };
}
