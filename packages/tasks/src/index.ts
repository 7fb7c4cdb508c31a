export { corpusBleu, exactMatch, formatBleu, tokenize13a, BLEU_MAX_ORDER, type BleuScore } from './bleu.js';
export { stableHash, groupByPrompt, loadTaskFile, parseTaskJsonl, splitByPrompt, writeTaskFile, TASK_MAX_FILE_BYTES, type TaskExample } from './task-file.js';
export { encodeTask, rowsOf, TaskBatchSampler, taskValidationBatches, type EncodedExample, type TaskBatch } from './task-batches.js';
export { buildCmudictTask, loadCmudict, CMUDICT_PROMPT, type CmudictTaskOptions } from './cmudict-task.js';
