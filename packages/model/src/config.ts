import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';

/** The shape of a GPT-2-style model. Every size is a positive integer. */
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
  /** LayerNorm epsilon added to the variance (GPT-2 and PyTorch: 1e-5). */
  layerNormEps: number;
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
  const eps = config.layerNormEps;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${label}: layerNormEps must be a positive number, got ${String(eps)}`, {
      hint: 'GPT-2 uses layerNormEps = 1e-5',
    });
  }
}
