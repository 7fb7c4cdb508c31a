/**
 * Stable error codes thrown by @trainer/model. Scripts and other packages match on these strings,
 * so a code is never renamed or reused. Every error also carries a message naming the offending
 * value and a hint saying what to do.
 */
export const ModelErrorCode = {
  /** A requested TF.js backend (native TensorFlow, CUDA, wasm) cannot be loaded on this machine. */
  BACKEND_UNAVAILABLE: 'TRAINER_ERR_BACKEND_UNAVAILABLE',
  /** A backend name that is not one of auto, cuda, webgpu, tensorflow, wasm, cpu. */
  UNKNOWN_BACKEND: 'TRAINER_ERR_UNKNOWN_BACKEND',
  /** A model name that is not in MODEL_CONFIGS. */
  UNKNOWN_MODEL: 'TRAINER_ERR_UNKNOWN_MODEL',
  /** A GPTConfig with a non-positive or non-integer size, or dModel not divisible by heads. */
  MODEL_CONFIG: 'TRAINER_ERR_MODEL_CONFIG',
  /** Tokens, targets, batch, gradient buffer or parameter vector of the wrong size or range. */
  MODEL_INPUT: 'TRAINER_ERR_MODEL_INPUT',
  /** The model was used before setParams, or after dispose. */
  MODEL_STATE: 'TRAINER_ERR_MODEL_STATE',
  /** The GPU device went away mid-run (WebGPU's device.lost: reset, removed, driver crash). */
  DEVICE_LOST: 'TRAINER_ERR_DEVICE_LOST',
} as const;

export type ModelErrorCode = (typeof ModelErrorCode)[keyof typeof ModelErrorCode];
