import type { Command } from 'commander';
import type { TrainRequest } from '@trainer/launcher';
import { TrainerError } from '@trainer/errors';
import { int, list, num, oneOf, parseByteSize } from './parse.js';

export const BACKENDS = ['auto', 'cuda', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export const KERNEL_SETS = ['auto', 'host', 'tf'] as const;
export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;

/** The training options shared by `launch` and `coordinator` (the job travels to the workers). */
export function addTrainOptions(cmd: Command): Command {
  return cmd
    .option('--model <name>', 'named model config (gpt-nano, gpt-mini, gpt2-124m, llama-nano, smollm-135m, llama-3.2-1b, ...)', 'gpt-nano')
    .option('--vocab-size <n>', 'override the model\'s vocabulary size', int(257))
    .option('--context-length <n>', 'override the model\'s context length', int(1))
    .option('--layers <n>', 'override the number of transformer blocks', int(1))
    .option('--heads <n>', 'override the number of attention heads', int(1))
    .option('--d-model <n>', 'override the embedding width', int(1))
    .option('--kv-heads <n>', 'Llama models: override the key/value heads (grouped-query attention; divides --heads)', int(1))
    .option('--ffn-hidden <n>', 'Llama models: override the SwiGLU hidden size', int(1))
    .option('--rope-theta <x>', 'Llama models: override the RoPE base', num(1))
    .option('--data <source...>', 'moby-dick, sotu, or .txt/.jsonl files and folders', ['moby-dick'])
    .option('--tokenizer <file>', 'a tokenizer: ours from `trainer tokenizer train`, a Hugging Face tokenizer.json (byte-level BPE), GPT-2 vocab.json + merges.txt, or a model folder holding them (default: train one on the corpus, cached)')
    .option('--steps <n>', 'optimizer steps', int(1), 200)
    .option('--global-batch <n>', 'sequences per optimizer step, over all workers', int(1), 16)
    .option('--micro-batch <n>', 'sequences per forward/backward on one worker (default: global batch / workers)', int(1))
    .option('--seq-len <n>', 'tokens per training sequence (default: the model\'s context length)', int(1))
    .option('--lr <x>', 'peak learning rate', num(0), 1e-3)
    .option('--min-lr <x>', 'final learning rate of the cosine decay (default: lr / 10)', num(0))
    .option('--warmup-steps <n>', 'linear warmup steps (default: min(100, steps / 10))', int(0))
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (on matrices and embeddings)', num(0), 0.1)
    .option('--beta1 <x>', 'AdamW beta1', num(0, 0.999999), 0.9)
    .option('--beta2 <x>', 'AdamW beta2', num(0, 0.999999), 0.95)
    .option('--grad-clip <x>', 'clip gradients to this global norm (0: off)', num(0), 1.0)
    .option('--seed <n>', 'seed for initialization, data order and sampling', int(0, 2 ** 32 - 1), 1337)
    .option('--tp <n>', 'tensor-parallel group size (Megatron column/row-parallel layers); data parallel over the rest', int(1, 1024), 1)
    .option('--pp <n>', 'pipeline stages (1F1B schedule); data parallel over the rest', int(1, 1024), 1)
    .option('--pp-split <blocks>', 'blocks per pipeline stage, e.g. 3,3,2 (default: balanced as --pp-balance says)', list(int(0)))
    .option('--pp-balance <how>', 'what the default pipeline split evens out: compute (FLOPs per token: a block 24C^2+4TC, the output head 2CV, the embedding ~0) or params', oneOf(['compute', 'params'] as const), 'compute')
    .option('--micro-batches <n>', 'micro-batches per step and replica (the pipeline keeps this many in its schedule); instead of --micro-batch', int(1))
    .option('--precision <p>', 'fp32, bf16 or fp16 (16-bit parameters and gradients, fp32 master and optimizer; fp16 with dynamic loss scaling)', oneOf(PRECISIONS), 'fp32')
    .option('--activation-checkpointing', 'keep only block inputs in forward and recompute each block in backward (less memory, one more forward)')
    .option('--no-overlap', 'reduce gradients after backward instead of while it runs (ZeRO 0-1; the same sums either way)')
    .option('--bucket-mb <n>', 'largest gradient all-reduce in MiB of fp32 (PyTorch DDP\'s bucket_cap_mb; ZeRO 0 reduces a larger unit in several)', num(0.001), 25)
    .option('--comm-thread <when>', 'ZeRO\'s per-step collectives (gradient reductions, ZeRO-3\'s parameter gathers and prefetch) on a data-plane thread, whose sockets progress while this thread computes (the same sums): on, off, or auto (on when the data-parallel group spans machines)', oneOf(['auto', 'on', 'off'] as const), 'auto')
    .option('--zero <stage>', 'ZeRO stage: 0 data parallel, 1 partition optimizer state, 2 + gradients, 3 + parameters', int(0, 3), 0)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--kernels <set>', 'kernel set and where the model state lives: host (JS/SIMD kernels, state in host memory: fastest on wasm/cpu), tf (TF.js ops, state on the device: the GPU path), auto (host on wasm/cpu, tf elsewhere)', oneOf(KERNEL_SETS), 'auto')
    .option('--max-memory <size>', 'the most memory one worker may use, e.g. 600MiB or 80GB (its GPU\'s on GPU backends, host memory on wasm and cpu): a run whose predicted peak (trainer estimate-memory) exceeds it is refused before it starts; default: check against what the machine has and warn', parseByteSize)
    .option('--eval-every <n>', 'validate every n steps (default: steps / 5)', int(0))
    .option('--eval-batches <n>', 'validation batches of --global-batch sequences per evaluation (0: none)', int(0), 8)
    .option('--val-fraction <x>', 'share of the corpus held out for validation', num(0.0001, 0.5), 0.05)
    .option('--out <dir>', 'run folder: metrics.jsonl, summary.json, model/ (default: runs/<time>)')
    .option('--cache-dir <dir>', 'where tokenizers and token files are cached (default: $TRAINER_CACHE_DIR or ~/.cache/trainer)')
    .option('--sample-prompt <text>', 'prompt for the sample written at the end', 'The ')
    .option('--sample-tokens <n>', 'tokens to generate at the end (0: none)', int(0), 120)
    .option('--temperature <x>', 'sampling temperature for the final sample (0: greedy)', num(0), 0.8)
    .option('--top-k <n>', 'sample among the k most likely tokens (0: all)', int(0), 40)
    .option('--heartbeat-timeout <s>', 'declare a silent worker failed after this many seconds', num(1), 30)
    .option('--rendezvous-timeout <s>', 'wait this long for all workers to join', num(1), 300)
    .option('--dashboard-port <n>', 'serve the live dashboard on this port (default: the coordinator port; 0: any free port)', int(0, 65535))
    .option('--no-dashboard', 'do not serve the live dashboard')
    .option('--sync-every <h>', 'low-communication training (DiLoCo): data-parallel replicas take h AdamW steps apart, then average their progress with an outer Nesterov step (every-step all-reduce when absent)', int(1))
    .option('--replicas <r>', 'with --sync-every: replicas the data-parallel ranks form (default: each data-parallel rank its own; ZeRO runs inside a replica)', int(1))
    .option('--outer-lr <x>', 'with --sync-every: the outer learning rate', num(0), 0.7)
    .option('--outer-momentum <x>', 'with --sync-every: the outer Nesterov momentum', num(0, 0.999999), 0.9)
    .option('--outer-precision <p>', 'with --sync-every: how pseudo-gradients travel, fp32 or bf16', oneOf(['fp32', 'bf16'] as const), 'fp32')
    .option('--outer-overlap [d]', 'with --sync-every: each sync\'s all-reduce runs on a data-plane thread behind the next d steps (default h/2), then its average lands', int(1))
    .option('--lora-rank <r>', 'LoRA: freeze the base and train rank-r adapters A [in, r], B [r, out] on --lora-targets (only adapter state is trained, partitioned and communicated)', int(1))
    .option('--lora-alpha <a>', 'with --lora-rank: the update is scaled by alpha / r (PEFT\'s lora_alpha)', num(0), 8)
    .option('--lora-dropout <p>', 'with --lora-rank: dropout on the adapters\' input in training, p in [0, 1) (PEFT\'s lora_dropout; the same mask in every layout)', num(0, 0.999999), 0)
    .option('--lora-targets <list>', 'with --lora-rank: the linears to adapt, comma-separated: q,k,v,o,gate,up,down (or PEFT\'s q_proj, ...)', (v: string) => v.split(',').map((t) => t.trim()).filter((t) => t.length > 0), ['q', 'v'])
    .option('--save-every <n>', 'write a sharded checkpoint to <out>/checkpoints every n steps and after the last (0: never)', int(0), 0)
    .option('--keep-last <k>', 'keep the newest k checkpoints, removing older ones after each commit (0: all)', int(0), 0)
    .option('--resume <auto|path>', 'continue from a checkpoint: auto = the newest in <out>/checkpoints that verifies (none: start fresh), or a checkpoint path');
}

/** The coordinator's dashboard settings from --dashboard-port / --no-dashboard. */
export function dashboardSettings(o: Pick<TrainCliOptions, 'dashboard' | 'dashboardPort'>): { port?: number } | false {
  return o.dashboard === false ? false : o.dashboardPort === undefined ? {} : { port: o.dashboardPort };
}

export interface TrainCliOptions {
  model: string;
  vocabSize?: number;
  contextLength?: number;
  layers?: number;
  heads?: number;
  dModel?: number;
  kvHeads?: number;
  ffnHidden?: number;
  ropeTheta?: number;
  data: string[];
  tokenizer?: string;
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
  zero: number;
  tp: number;
  pp: number;
  ppSplit?: number[];
  ppBalance: 'compute' | 'params';
  microBatches?: number;
  activationCheckpointing?: boolean;
  overlap?: boolean;
  commThread: 'auto' | 'on' | 'off';
  bucketMb: number;
  precision: 'fp32' | 'bf16' | 'fp16';
  backend: (typeof BACKENDS)[number];
  kernels: (typeof KERNEL_SETS)[number];
  maxMemory?: number;
  evalEvery?: number;
  evalBatches: number;
  valFraction: number;
  out?: string;
  cacheDir?: string;
  samplePrompt: string;
  sampleTokens: number;
  temperature: number;
  topK: number;
  heartbeatTimeout: number;
  rendezvousTimeout: number;
  dashboard?: boolean;
  dashboardPort?: number;
  syncEvery?: number;
  replicas?: number;
  outerLr: number;
  outerMomentum: number;
  outerPrecision: 'fp32' | 'bf16';
  outerOverlap?: boolean | number;
  loraRank?: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargets: string[];
  saveEvery: number;
  keepLast: number;
  resume?: string;
}

export function defaultRunDir(): string {
  return `runs/${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`;
}

export function toTrainRequest(o: TrainCliOptions, world: number, extra: Partial<TrainRequest> = {}): TrainRequest {
  if (o.replicas !== undefined && o.syncEvery === undefined) {
    throw new TrainerError('TRAINER_ERR_USAGE', '--replicas was given without --sync-every', { hint: 'replicas are DiLoCo\'s: add --sync-every H (steps between syncs)' });
  }
  if (o.outerOverlap === true && o.syncEvery === undefined) {
    throw new TrainerError('TRAINER_ERR_USAGE', '--outer-overlap was given without --sync-every', { hint: 'it overlaps DiLoCo\'s syncs: add --sync-every H (steps between syncs)' });
  }
  const overrides: TrainRequest['modelOverrides'] = {};
  if (o.vocabSize !== undefined) overrides.vocabSize = o.vocabSize;
  if (o.contextLength !== undefined) overrides.contextLength = o.contextLength;
  if (o.layers !== undefined) overrides.layers = o.layers;
  if (o.heads !== undefined) overrides.heads = o.heads;
  if (o.dModel !== undefined) overrides.dModel = o.dModel;
  if (o.kvHeads !== undefined) overrides.kvHeads = o.kvHeads;
  if (o.ffnHidden !== undefined) overrides.ffnHidden = o.ffnHidden;
  if (o.ropeTheta !== undefined) overrides.ropeTheta = o.ropeTheta;
  return {
    modelName: o.model,
    modelOverrides: overrides,
    data: o.data.length === 1 ? o.data[0] : o.data,
    tokenizerPath: o.tokenizer,
    world,
    steps: o.steps,
    globalBatch: o.globalBatch,
    microBatch: o.microBatch,
    seqLen: o.seqLen,
    lr: o.lr,
    minLr: o.minLr,
    warmupSteps: o.warmupSteps,
    weightDecay: o.weightDecay,
    beta1: o.beta1,
    beta2: o.beta2,
    gradClip: o.gradClip,
    seed: o.seed,
    zero: o.zero,
    tp: o.tp,
    pp: o.pp,
    ppSplit: o.ppSplit,
    ppBalance: o.ppBalance,
    microBatches: o.microBatches,
    activationCheckpointing: o.activationCheckpointing ?? false,
    overlap: o.overlap !== false,
    commThread: o.commThread,
    bucketBytes: Math.round(o.bucketMb * 2 ** 20),
    precision: o.precision,
    backend: o.backend,
    kernels: o.kernels,
    evalEvery: o.evalEvery,
    evalBatches: o.evalBatches,
    valFraction: o.valFraction,
    warmupTimingSteps: 1,
    outDir: o.out ?? defaultRunDir(),
    cacheDir: o.cacheDir,
    sample: { prompt: o.samplePrompt, maxNewTokens: o.sampleTokens, temperature: o.temperature, topK: o.topK },
    checkpoint: { saveEvery: o.saveEvery, keepLast: o.keepLast, resume: o.resume },
    ...(o.syncEvery !== undefined ? { outer: { syncEvery: o.syncEvery, replicas: o.replicas, lr: o.outerLr, momentum: o.outerMomentum, precision: o.outerPrecision, overlap: typeof o.outerOverlap === 'number' ? o.outerOverlap : o.outerOverlap === true ? Math.max(1, Math.floor(o.syncEvery / 2)) : 0 } } : {}),
    ...(o.loraRank !== undefined ? { lora: { rank: o.loraRank, alpha: o.loraAlpha, dropout: o.loraDropout, targets: o.loraTargets } } : {}),
    ...extra,
  };
}
