import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BpeTokenizer, loadCorpus, prepareTokens, trainBpe, type Corpus } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { checkPreparedData, parsePreparedData, type PreparedDataSpec } from './prepared-data.js';
import { meshShape } from '@trainer/engine';
import { checkPipeline, checkTensorParallel, loraTargetLinears, resolveModelConfig, type GPTConfig, type LoraConfig, type PipelineBalance } from '@trainer/model';
import type { TrainJob } from './job-spec.js';
import { TrainJobSchema } from './job-spec.js';
import { prepareCheckpointing, type CheckpointRequest } from './checkpointing/resume.js';
import { checkTaskData, type ResolvedFinetune } from './finetune/prepare-finetune.js';

/**
 * Turns the command line into a validated job, before any worker starts: the model config, the
 * corpus (read, tokenized once and cached), the tokenizer (given, or trained on the corpus and
 * cached), and every size check that would otherwise fail on N workers at once.
 */
export interface TrainRequest {
  modelName: string;
  modelOverrides: Partial<GPTConfig>;
  /** 'moby-dick', 'sotu', paths, or 'synthetic' (random tokens; benchmarks). */
  data: string | string[];
  tokenizerPath?: string;
  world: number;
  steps: number;
  globalBatch: number;
  microBatch?: number;
  seqLen?: number;
  lr: number;
  minLr?: number;
  warmupSteps?: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  seed: number;
  /** ZeRO stage (0: plain data parallel). */
  zero?: number;
  /** Tensor-parallel group size (1: none). */
  tp?: number;
  /** Pipeline stages (1: none), optional blocks per stage, and micro-batches per step. */
  pp?: number;
  ppSplit?: number[];
  /** What the default pipeline split balances (when ppSplit is not given; default 'compute'). */
  ppBalance?: PipelineBalance;
  microBatches?: number;
  activationCheckpointing?: boolean;
  /** Reduce gradients while backward runs (default true). */
  overlap?: boolean;
  /** ...on a data-plane thread: on, off, auto (default: when the data-parallel group spans machines). */
  commThread?: TrainJob['commThread'];
  /** Largest gradient all-reduce in bytes of fp32 (default 25 MiB, DDP's). */
  bucketBytes?: number;
  precision?: TrainJob['precision'];
  backend: TrainJob['backend'];
  /** Kernel set (default auto: host on wasm and cpu, tf on native backends). */
  kernels?: TrainJob['kernels'];
  evalEvery?: number;
  evalBatches: number;
  valFraction: number;
  warmupTimingSteps: number;
  outDir: string;
  cacheDir?: string;
  sample: TrainJob['sample'];
  /** --save-every, --keep-last, --resume. */
  checkpoint?: CheckpointRequest;
  /** DiLoCo: --sync-every H, --replicas (default: every data-parallel rank its own replica), --outer-lr, --outer-momentum, --outer-precision, --outer-overlap. */
  outer?: { syncEvery: number; replicas?: number; lr: number; momentum: number; precision: 'fp32' | 'bf16'; overlap?: number };
  /** Fine-tuning (trainer finetune): the pretrained model (config, tokenizer, parameters) and the task file. */
  finetune?: ResolvedFinetune;
  /** LoRA (--lora-rank ...): only adapters trained, the base frozen. */
  lora?: LoraConfig;
}

export interface PreparedJob {
  job: TrainJob;
  tokenizerJson: string | undefined;
  corpusTokens?: { train: number; val: number };
}

export function defaultCacheDir(): string {
  return process.env.TRAINER_CACHE_DIR ?? join(homedir(), '.cache', 'trainer');
}

export async function prepareTrainJob(req: TrainRequest, log: (msg: string) => void): Promise<PreparedJob> {
  const model = req.finetune ? req.finetune.config : resolveModelConfig(req.modelName, req.modelOverrides);
  const seqLen = req.seqLen ?? model.contextLength;
  if (seqLen > model.contextLength) {
    throw new TrainerError('TRAINER_ERR_CONTEXT_TOO_LONG', `--seq-len ${seqLen} is longer than the model's context of ${model.contextLength} tokens`, {
      hint: `use --seq-len ${model.contextLength} or less, or a model with a longer context (--context-length)`,
    });
  }
  const tp = req.tp ?? 1;
  const pp = req.pp ?? 1;
  const { dp } = meshShape(req.world, tp, pp);
  if (tp > 1) checkTensorParallel(model, tp);
  // The split is decided here, once, and travels in the job (every stage builds from the same one).
  const ppSplit = pp > 1 || req.ppSplit ? checkPipeline(model, { stages: pp, stage: 0, ...(req.ppSplit ? { blocks: req.ppSplit } : { balance: req.ppBalance ?? 'compute' }) }) : undefined;
  if (pp > 1 && !req.ppSplit) log(`pipeline split ${ppSplit!.join(',')} blocks per stage (balanced by ${req.ppBalance ?? 'compute'}; --pp-split overrides)`);
  const replicas = dp === req.world ? `${dp} workers` : `${dp} data-parallel replicas (${req.world} workers / (tp ${tp} x pp ${pp}))`;
  if (req.microBatches !== undefined && req.microBatch !== undefined) {
    throw new TrainerError('TRAINER_ERR_USAGE', '--micro-batch and --micro-batches were both given', { hint: 'give the size of a micro-batch or the number of micro-batches per step, not both' });
  }
  const microBatch = req.microBatch ?? req.globalBatch / dp / (req.microBatches ?? 1);
  if (!Number.isInteger(microBatch) || req.globalBatch % (dp * microBatch) !== 0) {
    throw new TrainerError('TRAINER_ERR_BATCH_INDIVISIBLE', `the global batch of ${req.globalBatch} sequences does not divide among ${replicas}${req.microBatch ? ` in micro-batches of ${req.microBatch}` : ''}`, {
      hint: `choose --global-batch as a multiple of ${dp}${req.microBatch ? ` x ${req.microBatch}` : ''} (data-parallel replicas x micro-batch)`,
      details: { globalBatch: req.globalBatch, world: req.world, dp, microBatch: req.microBatch },
    });
  }
  const zero = req.zero ?? 0;
  if (![0, 1, 2, 3].includes(zero)) {
    throw new TrainerError('TRAINER_ERR_ZERO_STAGE', `--zero ${zero} is not a ZeRO stage`, {
      hint: 'use 0 (plain data parallel), 1 (optimizer state partitioned), 2 (+ gradients) or 3 (+ parameters)',
    });
  }
  if (zero > 0 && req.world === 1) log(`ZeRO stage ${zero} on a single worker partitions nothing: it trains exactly as stage 0, with the stage's bookkeeping`);
  const cacheDir = req.cacheDir ?? defaultCacheDir();
  const synthetic = req.data === 'synthetic';
  let tokenizerJson: string | undefined;
  let corpusTokens: PreparedJob['corpusTokens'];
  let prepared: PreparedDataSpec | null = null;
  if (req.finetune) {
    tokenizerJson = req.finetune.tokenizerJson;
    await checkTaskData(req.finetune, seqLen, req.valFraction, req.evalBatches, log, microBatch);
  } else if (!synthetic && (prepared = await parsePreparedData(req.data)) !== null) {
    const checked = await checkPreparedData(prepared, req.tokenizerPath);
    if (checked.tokenizer.vocabSize !== model.vocabSize) {
      throw new TrainerError('TRAINER_ERR_TOKENIZER_MISMATCH', `the datasets' tokenizer has ${checked.tokenizer.vocabSize} tokens but the model ${req.modelName} has a vocabulary of ${model.vocabSize}`, {
        hint: `set the model's --vocab-size ${checked.tokenizer.vocabSize}`,
      });
    }
    tokenizerJson = JSON.stringify(checked.tokenizer.toJSON());
    corpusTokens = { train: checked.train, val: checked.val };
    log(`prepared data: ${prepared.datasets.map((d) => `${d.path}${prepared!.datasets.length > 1 ? ` (weight ${d.weight})` : ''}`).join(', ')}: ${checked.train.toLocaleString('en-US')} train + ${checked.val.toLocaleString('en-US')} val tokens, read by ranges on every worker`);
    if (req.evalBatches > 0 && checked.val < seqLen + 1) {
      throw new TrainerError('TRAINER_ERR_CORPUS_TOO_SHORT', `the validation split has ${checked.val} tokens, fewer than one sequence of ${seqLen + 1}`, {
        hint: 'prepare with a larger --val-fraction, use a shorter --seq-len, or --eval-batches 0',
      });
    }
  } else if (!synthetic) {
    const corpus = await loadCorpus(req.data);
    log(`corpus ${corpus.name}: ${corpus.documents.length} documents (${corpus.sourceDescription})`);
    const tokenizer = await obtainTokenizer(req.tokenizerPath, corpus, model.vocabSize, cacheDir, log);
    if (tokenizer.vocabSize !== model.vocabSize) {
      throw new TrainerError('TRAINER_ERR_TOKENIZER_MISMATCH', `the tokenizer has ${tokenizer.vocabSize} tokens but the model ${req.modelName} has a vocabulary of ${model.vocabSize}`, {
        hint: `train a tokenizer with --vocab ${model.vocabSize}, or set the model's --vocab-size ${tokenizer.vocabSize}`,
      });
    }
    tokenizerJson = JSON.stringify(tokenizer.toJSON());
    const split = await prepareTokens({ corpus, tokenizer, cacheDir, valFraction: req.valFraction, log });
    corpusTokens = { train: split.train.length, val: split.val.length };
    if (split.train.length < seqLen + 1) {
      throw new TrainerError('TRAINER_ERR_CORPUS_TOO_SHORT', `the training split has ${split.train.length} tokens, fewer than one sequence of ${seqLen + 1}`, {
        hint: 'use a bigger corpus or a shorter --seq-len',
      });
    }
    if (req.evalBatches > 0 && split.val.length < seqLen + 1) {
      throw new TrainerError('TRAINER_ERR_CORPUS_TOO_SHORT', `the validation split has ${split.val.length} tokens, fewer than one sequence of ${seqLen + 1}`, {
        hint: 'use a bigger corpus, a larger validation fraction, a shorter --seq-len, or --eval-batches 0',
      });
    }
  }
  const job: TrainJob = {
    kind: 'train',
    modelName: req.modelName,
    model,
    backend: req.backend,
    kernels: req.kernels ?? 'auto',
    data: req.finetune ? { source: 'task', path: req.finetune.taskPath, valFraction: req.valFraction, pack: req.finetune.pack, ...(req.finetune.chatTemplate ? { chatTemplate: req.finetune.chatTemplate } : {}) }
      : synthetic ? { source: 'synthetic' } : prepared ? { source: 'prepared', datasets: prepared.datasets } : { source: 'corpus', corpus: req.data, cacheDir, valFraction: req.valFraction },
    ...(req.finetune ? { init: req.finetune.source } : {}),
    steps: req.steps,
    globalBatch: req.globalBatch,
    microBatch,
    seqLen,
    seed: req.seed,
    zero: zero as TrainJob['zero'],
    tp,
    pp,
    activationCheckpointing: req.activationCheckpointing ?? false,
    overlap: req.overlap ?? true,
    commThread: req.commThread ?? 'auto',
    bucketBytes: req.bucketBytes ?? 25 * 2 ** 20,
    precision: req.precision ?? 'fp32',
    ...(ppSplit ? { ppSplit } : {}),
    lr: req.lr,
    minLr: req.minLr ?? req.lr / 10,
    warmupSteps: req.warmupSteps ?? Math.min(100, Math.floor(req.steps / 10)),
    weightDecay: req.weightDecay,
    beta1: req.beta1,
    beta2: req.beta2,
    gradClip: req.gradClip,
    evalEvery: req.evalEvery ?? Math.max(1, Math.floor(req.steps / 5)),
    evalBatches: synthetic ? 0 : req.evalBatches,
    warmupTimingSteps: req.warmupTimingSteps,
    outDir: req.outDir,
    sample: synthetic ? { ...req.sample, maxNewTokens: 0 } : req.sample,
  };
  if (req.outer) job.outer = prepareOuter(req.outer, dp, req, log);
  if (req.lora) {
    const linears = loraTargetLinears(model, req.lora); // refuses targets that match no layer, naming the valid ones
    if (req.outer) throw new TrainerError('TRAINER_ERR_USAGE', '--lora-rank with --sync-every is not supported', { hint: 'drop one of them' });
    job.lora = { ...req.lora, targets: [...req.lora.targets] };
    log(`LoRA rank ${req.lora.rank}, alpha ${req.lora.alpha} (scale ${req.lora.alpha / req.lora.rank}) on ${linears.join(', ')}; the base is frozen`);
  }
  const checkpoint = await prepareCheckpointing(req.checkpoint, job, req.world, tokenizerJson, log);
  if (checkpoint) job.checkpoint = checkpoint;
  return { job: TrainJobSchema.parse(job), tokenizerJson, corpusTokens };
}

/** DiLoCo's settings, checked against the data-parallel size and what it does not combine with yet. */
function prepareOuter(o: NonNullable<TrainRequest['outer']>, dp: number, req: TrainRequest, log: (msg: string) => void): NonNullable<TrainJob['outer']> {
  const replicas = o.replicas ?? dp;
  if (dp % replicas !== 0) {
    throw new TrainerError('TRAINER_ERR_MESH', `${dp} data-parallel ranks do not split into ${replicas} replicas`, {
      hint: `use --replicas that divides ${dp} (each replica is a data-parallel group of ${dp} / replicas ranks, ZeRO inside it)`,
    });
  }
  if (o.momentum >= 1) throw new TrainerError('TRAINER_ERR_USAGE', `--outer-momentum ${o.momentum} is not below 1`, { hint: 'DiLoCo uses 0.9' });
  const overlap = o.overlap ?? 0;
  if (overlap > 0 && overlap >= o.syncEvery) {
    throw new TrainerError('TRAINER_ERR_USAGE', `--outer-overlap ${overlap} is not below --sync-every ${o.syncEvery}: a sync must land before the next one starts`, {
      hint: `use --outer-overlap between 1 and ${o.syncEvery - 1} (default ${Math.max(1, Math.floor(o.syncEvery / 2))}), or a larger --sync-every`,
    });
  }
  log(`DiLoCo: ${replicas} replica(s) of ${dp / replicas} data-parallel rank(s) train apart and sync every ${o.syncEvery} steps ` +
    `(outer Nesterov SGD, lr ${o.lr}, momentum ${o.momentum}; pseudo-gradients in ${o.precision}${overlap ? `; each sync's all-reduce runs behind the next ${overlap} step(s) on a data-plane thread` : ''})`);
  return { syncEvery: o.syncEvery, replicas, lr: o.lr, momentum: o.momentum, precision: o.precision, overlap };
}

/** The given tokenizer, or one trained on the corpus (cached by corpus and vocabulary size). */
async function obtainTokenizer(path: string | undefined, corpus: Corpus, vocab: number, cacheDir: string, log: (msg: string) => void): Promise<BpeTokenizer> {
  if (path) return BpeTokenizer.load(path);
  const cached = join(cacheDir, `tokenizer-${corpus.contentHash.slice(0, 16)}-${vocab}.json`);
  try {
    await readFile(cached);
    return await BpeTokenizer.load(cached);
  } catch {
    // not cached yet (or unreadable: retrain)
  }
  const started = performance.now();
  const tokenizer = trainBpe(corpus.documents, { vocabSize: vocab });
  log(`trained a ${vocab}-token BPE tokenizer on ${corpus.name} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await mkdir(cacheDir, { recursive: true });
  await tokenizer.save(cached);
  return tokenizer;
}
