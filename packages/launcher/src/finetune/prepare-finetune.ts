import { BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import type { GPTConfig } from '@trainer/model';
import { packingStats, readChatTemplate, type ChatTemplateSpec } from '@trainer/tasks';
import { resolve } from 'node:path';
import { describePretrained, resolvePretrained, type PretrainedSource } from './pretrained.js';
import { encodeTaskSplit } from './task-data.js';

/**
 * `trainer finetune --from MODEL --data task.jsonl`: the same launch as training, with the
 * pretrained model's config, tokenizer and parameters, and a task file as the data. Checked here,
 * once, before any worker starts: the model loads, the task parses (a malformed line is named),
 * every example fits a training row, and the held-out split is reported.
 */
export interface FinetuneRequest {
  /** Model folder, run folder, checkpoint, or Hugging Face export. */
  from: string;
  /** Task file: JSON Lines of {"prompt", "completion"} or {"messages": [...]} (chat). */
  task: string;
  /** Pack a micro-batch's examples into shared rows (default false: one example per row). */
  pack?: boolean;
}

export interface ResolvedFinetune {
  source: PretrainedSource;
  modelName: string;
  config: GPTConfig;
  tokenizerJson: string;
  taskPath: string;
  pack: boolean;
  /** The model folder's chat template (tokenizer_config.json), if it has one. */
  chatTemplate?: ChatTemplateSpec;
}

export async function resolveFinetune(req: FinetuneRequest): Promise<ResolvedFinetune> {
  const source = await resolvePretrained(req.from);
  const saved = await describePretrained(source); // config and tokenizer: the parameters are read by each worker, its ranges only
  if (!saved.tokenizerJson) {
    throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${saved.dir} has no tokenizer (tokenizer.json, or trainer-tokenizer.json in an export)`, {
      hint: 'fine-tuning needs the tokenizer the model was trained with: use the run folder or a `trainer export` of it',
    });
  }
  const chatTemplate = await readChatTemplate(saved.tokenizerDir ?? saved.dir);
  return { source, modelName: saved.modelName, config: saved.config, tokenizerJson: saved.tokenizerJson, taskPath: resolve(req.task), pack: req.pack ?? false, ...(chatTemplate ? { chatTemplate } : {}) };
}

/** Checks the task against the model (every example fits `seqLen`); returns the split's sizes. */
export async function checkTaskData(f: ResolvedFinetune, seqLen: number, valFraction: number, evalBatches: number, log: (msg: string) => void, microBatch = 1): Promise<{ train: number; val: number }> {
  const tokenizer = BpeTokenizer.fromJSON(JSON.parse(f.tokenizerJson));
  const split = await encodeTaskSplit(f.taskPath, valFraction, tokenizer, seqLen, f.chatTemplate);
  if (!split.train.length) {
    throw new TrainerError('TRAINER_ERR_TASK_EMPTY', `every example of ${f.taskPath} fell into the held-out split`, { hint: 'use a smaller --val-fraction or more examples' });
  }
  const tokens = split.train.reduce((a, e) => a + e.trainedTargets, 0);
  log(`task ${f.taskPath}: ${split.train.length} training examples (${tokens} trained tokens: completions, or assistant turns of chats), ${split.val.length} held out for validation`);
  if (f.chatTemplate) log(`chat lines are rendered with the model's chat template (tokenizer_config.json)`);
  // What packing does to the training set in micro-batches of this size (file order): the share of computed positions that are not padding.
  const unpacked = packingStats(split.train, seqLen, microBatch, false);
  const packed = packingStats(split.train, seqLen, microBatch, true);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  log(f.pack
    ? `packing: ${packed.examplesPerRow.toFixed(2)} examples per row of ${seqLen}, ${pct(packed.nonPaddingShare)} of positions are not padding (unpacked: ${pct(unpacked.nonPaddingShare)})`
    : `one example per row of ${seqLen}: ${pct(unpacked.nonPaddingShare)} of positions are not padding (--pack would give ${pct(packed.nonPaddingShare)}, ${packed.examplesPerRow.toFixed(2)} examples per row)`);
  if (!split.val.length && evalBatches > 0) log('no example was held out for validation: the run reports training loss only (raise --val-fraction for a validation loss)');
  log(`fine-tuning from ${f.source.kind} ${f.source.path}`);
  return { train: split.train.length, val: split.val.length };
}
