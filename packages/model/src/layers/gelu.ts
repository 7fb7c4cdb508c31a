/**
 * GELU, tanh approximation (GPT-2's `gelu_new`, PyTorch `approximate="tanh"`):
 *
 *   y = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2 / pi)
 *     = x s  with  s = sigmoid(2u)          (since 0.5 (1 + tanh(u)) = sigmoid(2u))
 *   dy/dx = s + x s (1 - s) 2k (1 + 3 * 0.044715 x^2)
 *
 * Kernels: gelu-host.ts (HostGelu), gelu-tf.ts (TfGelu). No parameters.
 */

/** k = sqrt(2 / pi). */
export const GELU_K = Math.sqrt(2 / Math.PI);
/** The cubic term's coefficient. */
export const GELU_A = 0.044715;

export { HostGelu } from './gelu-host.js';
export { TfGelu } from './gelu-tf.js';
