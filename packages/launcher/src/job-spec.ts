import { z } from 'zod';
import { CheckpointSpecSchema } from './checkpointing/checkpoint-spec.js';

/**
 * What a worker is asked to run. The coordinator builds it from the command line, validates it
 * before any worker starts, and sends it to every worker with its rank assignment; the worker
 * validates it again (it came over the network).
 */
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

export const ModelConfigSchema = z.object({
  vocabSize: positiveInt,
  contextLength: positiveInt,
  layers: positiveInt,
  heads: positiveInt,
  dModel: positiveInt,
  layerNormEps: z.number().positive(),
  family: z.enum(['gpt2', 'llama']).optional(),
  kvHeads: positiveInt.optional(),
  ffnHidden: positiveInt.optional(),
  ropeTheta: z.number().gt(1).optional(),
  ropeScaling: z.object({
    type: z.literal('llama3'), factor: z.number().positive(), lowFreqFactor: z.number().positive(),
    highFreqFactor: z.number().positive(), originalMaxPositions: positiveInt,
  }).strict().optional(),
  tiedHead: z.boolean().optional(),
});

export const CorpusDataSchema = z.object({
  source: z.literal('corpus'),
  /** Corpus spec as given to loadCorpus: 'moby-dick', 'sotu', or paths. */
  corpus: z.union([z.string(), z.array(z.string())]),
  /** Where token files are cached (tokenized once per corpus and tokenizer). */
  cacheDir: z.string(),
  valFraction: z.number().positive().lt(1),
});

/**
 * Datasets written by `trainer data prepare`: token shards read by ranges on every worker (a
 * shared path on several hosts), mixed by weight when there are several.
 */
export const PreparedDataSchema = z.object({
  source: z.literal('prepared'),
  datasets: z.array(z.object({ path: z.string(), weight: z.number().positive() })).min(1),
});

/** Uniformly random tokens (throughput benchmarks, like the PyTorch peer). */
export const SyntheticDataSchema = z.object({ source: z.literal('synthetic') });

/** Fine-tuning: prompt/completion examples (loss on completion tokens only; launcher/src/finetune). */
export const TaskDataSchema = z.object({
  source: z.literal('task'),
  /** Task file (JSON Lines); every worker reads it, so several hosts need a shared path. */
  path: z.string(),
  /** Share of prompts held out for the validation loss (split by a hash of the prompt). */
  valFraction: z.number().min(0).lt(1),
  /** Pack a micro-batch's examples into shared rows (packing.ts in @trainer/tasks); off: one example per row. */
  pack: z.boolean().default(false),
  /** The model's chat template (tokenizer_config.json), for {"messages": [...]} lines. */
  chatTemplate: z.object({ template: z.string(), bosToken: z.string(), eosToken: z.string() }).optional(),
});

export const TrainJobSchema = z.object({
  kind: z.literal('train'),
  modelName: z.string(),
  model: ModelConfigSchema,
  backend: z.enum(['auto', 'cuda', 'webgpu', 'tensorflow', 'wasm', 'cpu']),
  /**
   * Kernel set and where the model state lives: 'host' (JS/SIMD kernels, state in host arrays;
   * the fast path on wasm and cpu), 'tf' (TF.js ops, state as backend tensors: the GPU path), or
   * 'auto' (host on wasm and cpu, tf elsewhere).
   */
  kernels: z.enum(['auto', 'host', 'tf']).default('auto'),
  data: z.discriminatedUnion('source', [CorpusDataSchema, PreparedDataSchema, SyntheticDataSchema, TaskDataSchema]),
  /** Start from these parameters (fine-tuning) instead of a fresh initialization. */
  init: z.object({ kind: z.enum(['model', 'checkpoint', 'huggingface']), path: z.string() }).optional(),
  steps: positiveInt,
  /** Sequences per optimizer step, over all data-parallel ranks. */
  globalBatch: positiveInt,
  /** Sequences per forward/backward on one rank (gradient accumulation covers the rest). */
  microBatch: positiveInt,
  /** Sequence length used in training (<= model.contextLength). */
  seqLen: positiveInt,
  seed: nonNegativeInt,
  /** ZeRO stage over the data-parallel group: 0 (plain data parallel) to 3. */
  zero: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]),
  /** Tensor-parallel group size (Megatron); the data-parallel size is world / (tp x pp). */
  tp: positiveInt,
  /** How parameters and gradients are held and communicated (compute is fp32 on every backend). */
  precision: z.enum(['fp32', 'bf16', 'fp16']),
  /** Stages 0-1: reduce each unit's gradient while backward goes on (false: after backward; --no-overlap). */
  overlap: z.boolean().default(true),
  /** Recompute each block's forward in backward instead of keeping its activations. */
  activationCheckpointing: z.boolean(),
  /** Pipeline stages (1F1B schedule over the micro-batches of each step). */
  pp: positiveInt,
  /** Blocks per pipeline stage (prepareTrainJob decides it when pp > 1: --pp-split, else balanced by --pp-balance). */
  ppSplit: z.array(nonNegativeInt).optional(),
  lr: z.number().positive(),
  minLr: z.number().nonnegative(),
  warmupSteps: nonNegativeInt,
  weightDecay: z.number().nonnegative(),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  gradClip: z.number().nonnegative(),
  /** Validate every this many steps (0: only at the end). */
  evalEvery: nonNegativeInt,
  /** Validation batches per evaluation (0: none). */
  evalBatches: nonNegativeInt,
  /** Steps not timed at the start (throughput benchmarks). */
  warmupTimingSteps: nonNegativeInt,
  /** Run folder shared by all ranks (rank 0 writes the final model there). Empty: write nothing. */
  outDir: z.string(),
  /** A collective waiting this long for a rank fails every rank, naming it (--collective-timeout; default comm's 300 s). */
  collectiveTimeoutMs: positiveInt.optional(),
  /** Largest gradient all-reduce, bytes of fp32 (--bucket-mb; PyTorch DDP's bucket_cap_mb, 25 MiB). */
  bucketBytes: positiveInt.default(25 * 2 ** 20),
  /** ZeRO's per-step collectives on a data-plane thread (--comm-thread): on, off, or auto (when the data-parallel group spans machines). */
  commThread: z.enum(['auto', 'on', 'off']).default('auto'),
  /** How collectives move data (--collective-algorithm; comm's algorithm.ts): absent is 'auto' (hierarchical all-reduce across machines). */
  collectiveAlgorithm: z.enum(['auto', 'ring', 'direct', 'hierarchical']).optional(),
  /**
   * Low-communication training (DiLoCo; engine/src/outer/diloco.ts): the data-parallel ranks form
   * `replicas` replicas that train apart and average their progress every `syncEvery` steps with
   * an outer Nesterov step. Absent: every step all-reduces.
   */
  outer: z.object({
    syncEvery: positiveInt,
    replicas: positiveInt,
    lr: z.number().positive(),
    momentum: z.number().min(0).lt(1),
    precision: z.enum(['fp32', 'bf16']),
    /** Steps each sync's all-reduce runs behind before its average lands (1 .. syncEvery - 1); 0: syncs wait. */
    overlap: nonNegativeInt.default(0),
  }).optional(),
  /**
   * LoRA (model/src/lora): the base frozen, only adapters on `targets` (short names: q, k, v, o,
   * gate, up, down) trained; the update scaled by alpha / rank. Absent: every parameter trained.
   */
  lora: z.object({ rank: positiveInt, alpha: z.number().positive(), dropout: z.number().min(0).lt(1), targets: z.array(z.string()).min(1) }).optional(),
  /** Sharded checkpoints: where, how often, and the checkpoint to resume from (absent: none). */
  checkpoint: CheckpointSpecSchema.optional(),
  sample: z.object({ prompt: z.string(), maxNewTokens: nonNegativeInt, temperature: z.number().nonnegative(), topK: nonNegativeInt }),
  /**
   * The command's resolved options (--config file, flags, defaults; by long option name), for the
   * record: the run folder's run-config.yaml and every checkpoint's manifest. Workers ignore it.
   */
  runConfig: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number()]))])).optional(),
});

export type TrainJob = z.infer<typeof TrainJobSchema>;
export type JobSpec = TrainJob;
export const JobSpecSchema = TrainJobSchema;
