import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';

/**
 * The architecture family:
 *   gpt2   learned positions, LayerNorm with bias, GELU MLP (4C), biased linears, head tied to wte
 *   llama  RoPE, RMSNorm, SwiGLU MLP (ffnHidden), grouped-query attention (kvHeads), no biases,
 *          head tied or not (Llama 2/3, Mistral, Qwen, SmolLM)
 */
export type ModelFamily = 'gpt2' | 'llama';

/** Llama 3.1's RoPE frequency scaling (Hugging Face rope_type "llama3"). */
export interface RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** The shape of a GPT-2-style or Llama-style model. Every size is a positive integer. */
export interface GPTConfig {
  /** Number of token ids V: rows of wte, columns of the (tied) output head. */
  vocabSize: number;
  /** Longest sequence T the model can see: rows of wpe. Shorter sequences are fine. */
  contextLength: number;
  /** Number of transformer blocks L. */
  layers: number;
  /** Attention heads per block; dModel / heads is the head size. */
  heads: number;
  /** Residual stream width C (embedding size). */
  dModel: number;
  /** LayerNorm epsilon added to the variance (GPT-2 and PyTorch: 1e-5); RMSNorm's epsilon for llama. */
  layerNormEps: number;
  /** Architecture family; absent: 'gpt2'. The fields below apply to 'llama' only. */
  family?: ModelFamily;
  /** Key/value heads (grouped-query attention): divides heads; absent: heads (multi-head). */
  kvHeads?: number;
  /** SwiGLU hidden size F (gate_proj/up_proj outputs); absent: 4 * dModel. */
  ffnHidden?: number;
  /** RoPE base theta; absent: 10000. */
  ropeTheta?: number;
  /** RoPE frequency scaling (Llama 3.1/3.2); absent: none. */
  ropeScaling?: RopeScaling;
  /** Output head tied to the token embedding; absent: false for llama (always true for gpt2). */
  tiedHead?: boolean;
}

/** The family of a config (absent means gpt2). */
export function familyOf(c: GPTConfig): ModelFamily {
  return c.family ?? 'gpt2';
}

/** Whether the output head reads the token embedding (gpt2 always; llama when tiedHead). */
export function isTiedHead(c: GPTConfig): boolean {
  return familyOf(c) === 'gpt2' || c.tiedHead === true;
}

/** Key/value heads (heads for multi-head attention). */
export function kvHeadsOf(c: GPTConfig): number {
  return c.kvHeads ?? c.heads;
}

/** The MLP's hidden width: 4C for gpt2, ffnHidden (default 4C) for llama. */
export function ffnHiddenOf(c: GPTConfig): number {
  return familyOf(c) === 'llama' ? (c.ffnHidden ?? 4 * c.dModel) : 4 * c.dModel;
}

/** Named shapes. gpt-nano is the benchmark shape; gpt2-124m is GPT-2 small (Hugging Face `gpt2`). */
export const MODEL_CONFIGS: Record<string, GPTConfig> = {
  /** A toy for tests: 2 blocks of width 16 (about 8.6k parameters). */
  'gpt-micro': { vocabSize: 64, contextLength: 16, layers: 2, heads: 2, dModel: 16, layerNormEps: 1e-5 },
  /** The benchmark shape (same as /work/shared/bench/torch_gpt.py): about 1.07M parameters. */
  'gpt-nano': { vocabSize: 2048, contextLength: 128, layers: 4, heads: 4, dModel: 128, layerNormEps: 1e-5 },
  /** About 10.0M parameters (8.6M in the blocks), head size 64 like GPT-2. */
  'gpt-mini': { vocabSize: 4096, contextLength: 256, layers: 7, heads: 5, dModel: 320, layerNormEps: 1e-5 },
  /** GPT-2 small: 124M parameters, loadable from / exportable to Hugging Face `gpt2`. */
  'gpt2-124m': { vocabSize: 50257, contextLength: 1024, layers: 12, heads: 12, dModel: 768, layerNormEps: 1e-5 },
  /** GPT-2 XL (Hugging Face `gpt2-xl`): 1.56B parameters. */
  'gpt2-1.5b': { vocabSize: 50257, contextLength: 1024, layers: 48, heads: 25, dModel: 1600, layerNormEps: 1e-5 },
  /** GPT-3 6.7B's shape (Brown et al. 2020, table 2.1) with GPT-2's vocabulary: 6.66B parameters. */
  'gpt-6.7b': { vocabSize: 50257, contextLength: 2048, layers: 32, heads: 32, dModel: 4096, layerNormEps: 1e-5 },
  /** A 30B GPT (OPT-30B's shape: 48 blocks of width 7168, 56 heads): 29.97B parameters. */
  'gpt-30b': { vocabSize: 50257, contextLength: 2048, layers: 48, heads: 56, dModel: 7168, layerNormEps: 1e-5 },
  /** A Llama for tests and benchmarks: gpt-nano's size with GQA (4 query, 2 key/value heads), SwiGLU 384, untied head. */
  'llama-nano': {
    vocabSize: 2048, contextLength: 128, layers: 4, heads: 4, dModel: 128, layerNormEps: 1e-5,
    family: 'llama', kvHeads: 2, ffnHidden: 384, ropeTheta: 10000, tiedHead: false,
  },
  /** Hugging Face SmolLM-135M's shape (HuggingFaceTB/SmolLM-135M config.json): 134.5M parameters. */
  'smollm-135m': {
    vocabSize: 49152, contextLength: 2048, layers: 30, heads: 9, dModel: 576, layerNormEps: 1e-5,
    family: 'llama', kvHeads: 3, ffnHidden: 1536, ropeTheta: 10000, tiedHead: true,
  },
  /** Meta Llama-3.2-1B's shape (meta-llama/Llama-3.2-1B config.json): 1.24B parameters. */
  'llama-3.2-1b': {
    vocabSize: 128256, contextLength: 131072, layers: 16, heads: 32, dModel: 2048, layerNormEps: 1e-5,
    family: 'llama', kvHeads: 8, ffnHidden: 8192, ropeTheta: 500000, tiedHead: true,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
  },
};

const SIZE_FIELDS = ['vocabSize', 'contextLength', 'layers', 'heads', 'dModel'] as const;

/**
 * The config named `name` with `overrides` applied, validated.
 * Throws TRAINER_ERR_UNKNOWN_MODEL for an unknown name and TRAINER_ERR_MODEL_CONFIG for an
 * invalid combination (non-positive sizes, dModel not divisible by heads, eps <= 0).
 */
export function resolveModelConfig(name: string, overrides: Partial<GPTConfig> = {}): GPTConfig {
  const base = Object.prototype.hasOwnProperty.call(MODEL_CONFIGS, name) ? MODEL_CONFIGS[name] : undefined;
  if (base === undefined) {
    const names = Object.keys(MODEL_CONFIGS);
    throw new TrainerError(ModelErrorCode.UNKNOWN_MODEL, `unknown model '${name}'`, {
      hint: `use one of: ${names.join(', ')}`,
      details: { name, known: names },
    });
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config: GPTConfig = { ...base, ...defined };
  validateConfig(config, name);
  return config;
}

/** Throws TRAINER_ERR_MODEL_CONFIG unless every size is a positive integer and dModel % heads == 0. */
export function validateConfig(config: GPTConfig, label = 'config'): void {
  for (const field of SIZE_FIELDS) {
    const v = config[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: ${field} must be a positive integer, got ${String(v)}`, {
        hint: `set ${field} to a positive integer (e.g. ${MODEL_CONFIGS['gpt-nano'][field]})`,
        details: { field, value: v },
      });
    }
  }
  if (config.dModel % config.heads !== 0) {
    throw new TrainerError(
      ModelErrorCode.MODEL_CONFIG,
      `${label}: dModel ${config.dModel} is not divisible by heads ${config.heads}`,
      { hint: 'choose heads that divide dModel (head size = dModel / heads)', details: { dModel: config.dModel, heads: config.heads } },
    );
  }
  if (familyOf(config) === 'llama') validateLlama(config, label);
  else if (config.family !== undefined && config.family !== 'gpt2') {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: unknown model family '${String(config.family)}'`, { hint: "use family 'gpt2' or 'llama'" });
  }
  const eps = config.layerNormEps;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: layerNormEps must be a positive number, got ${String(eps)}`, {
      hint: 'GPT-2 uses layerNormEps = 1e-5',
    });
  }
}

function validateLlama(config: GPTConfig, label: string): void {
  const kv = kvHeadsOf(config);
  const F = ffnHiddenOf(config);
  for (const [field, v] of [['kvHeads', kv], ['ffnHidden', F]] as const) {
    if (!Number.isInteger(v) || v <= 0) {
      throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: ${field} must be a positive integer, got ${String(v)}`, { hint: `set ${field} to a positive integer`, details: { field, value: v } });
    }
  }
  if (config.heads % kv !== 0) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: ${config.heads} query heads are not a multiple of ${kv} key/value heads`, {
      hint: 'grouped-query attention shares each key/value head among heads / kvHeads query heads: choose kvHeads dividing heads',
      details: { heads: config.heads, kvHeads: kv },
    });
  }
  if ((config.dModel / config.heads) % 2 !== 0) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: the head size ${config.dModel / config.heads} is odd; RoPE rotates pairs of dimensions`, {
      hint: 'choose heads so that dModel / heads is even',
    });
  }
  const theta = config.ropeTheta ?? 10000;
  if (!Number.isFinite(theta) || theta <= 1) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: ropeTheta must be a number above 1, got ${String(config.ropeTheta)}`, { hint: 'Llama 2 uses 10000, Llama 3 500000' });
  }
  const s = config.ropeScaling;
  if (s !== undefined && (s.type !== 'llama3' || !(s.factor > 0) || !(s.lowFreqFactor > 0) || !(s.highFreqFactor > s.lowFreqFactor) || !(s.originalMaxPositions > 0))) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: ropeScaling ${JSON.stringify(s)} is not a valid llama3 scaling`, {
      hint: 'give type llama3 with factor > 0, 0 < lowFreqFactor < highFreqFactor and originalMaxPositions > 0',
    });
  }
}
