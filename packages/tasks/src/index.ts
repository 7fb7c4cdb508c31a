export { corpusBleu, exactMatch, formatBleu, tokenize13a, BLEU_MAX_ORDER, type BleuScore } from './bleu.js';
export { stableHash, groupByPrompt, loadTaskFile, loadFinetuneFile, parseFinetuneJsonl, parseTaskJsonl, readTaskText, splitByPrompt, writeTaskFile, TASK_MAX_FILE_BYTES, type TaskExample } from './task-file.js';
export { encodeTask, encodeFinetune, rowsOf, TaskBatchSampler, taskValidationBatches, type EncodedExample, type FinetuneExample, type TaskBatch } from './task-batches.js';
export { packRows, packingStats, firstFit } from './packing.js';
export { ChatTemplate, chatTemplateSpecFromConfig, readChatTemplate, type ChatMessage, type ChatTemplateSpec } from './chat-template.js';
export { assistantSpans, chatExample, encodeChat, CHAT_ROLES, type ChatExample } from './chat-task.js';
export { buildCmudictTask, loadCmudict, CMUDICT_PROMPT, type CmudictTaskOptions } from './cmudict-task.js';
