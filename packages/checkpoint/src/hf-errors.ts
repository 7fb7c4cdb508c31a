import { TrainerError } from '@trainer/errors';

/**
 * Failures reading a Hugging Face model folder (model.safetensors, or shards listed by
 * model.safetensors.index.json). Every one names the folder's file at fault; codes are stable
 * and listed in docs/ERRORS.md. A structurally broken safetensors file stays
 * TRAINER_ERR_SAFETENSORS_INVALID (safetensors.ts).
 */
export const HfErrorCode = {
  /** The folder has neither model.safetensors nor model.safetensors.index.json. */
  WEIGHTS_MISSING: 'TRAINER_ERR_HF_WEIGHTS_MISSING',
  /** model.safetensors.index.json is not JSON, has no weight_map, or names a file outside the folder. */
  INDEX: 'TRAINER_ERR_HF_INDEX',
  /** The index names a shard file that is not in the folder. */
  SHARD_MISSING: 'TRAINER_ERR_HF_SHARD_MISSING',
  /** A tensor the model needs is in no file of the folder. */
  TENSOR_MISSING: 'TRAINER_ERR_HF_TENSOR_MISSING',
  /** A tensor's shape differs from the one config.json implies. */
  TENSOR_SHAPE: 'TRAINER_ERR_HF_TENSOR_SHAPE',
  /** A tensor stored in a dtype other than F32, BF16 or F16. */
  DTYPE: 'TRAINER_ERR_HF_DTYPE',
} as const;

export type HfErrorCode = (typeof HfErrorCode)[keyof typeof HfErrorCode];

const HINTS: Record<HfErrorCode, string> = {
  TRAINER_ERR_HF_WEIGHTS_MISSING: 'pass a folder saved with safetensors (save_pretrained(..., safe_serialization=True), or `trainer export`); pytorch_model.bin is not read',
  TRAINER_ERR_HF_INDEX: 'the index is corrupt or hand-edited; download the model again (every file, index included)',
  TRAINER_ERR_HF_SHARD_MISSING: 'a shard was not downloaded or copied; fetch every model-*.safetensors file the index lists',
  TRAINER_ERR_HF_TENSOR_MISSING: 'the weights are not those of the model config.json describes (another architecture, a partial download)',
  TRAINER_ERR_HF_TENSOR_SHAPE: 'the weights do not match config.json (another size of the model); use the config.json saved with them',
  TRAINER_ERR_HF_DTYPE: 'convert the model to float32, bfloat16 or float16 (e.g. model.to(torch.bfloat16).save_pretrained(...)); quantized weights are not read',
};

export function hfError(code: HfErrorCode, message: string, opts: { cause?: unknown; file?: string; details?: Record<string, unknown> } = {}): TrainerError {
  return new TrainerError(code, message, {
    hint: HINTS[code], cause: opts.cause,
    details: { ...(opts.file ? { file: opts.file } : {}), ...opts.details },
  });
}
