import type { GPTConfig } from './config.js';
import { validateConfig } from './config.js';
import { paramLayout } from './layout.js';
import { Rng, hashString } from './prng.js';

/** Standard deviation of GPT-2's weight and embedding init. */
export const INIT_STD = 0.02;

/**
 * GPT-2 initialisation into a fresh flat vector (layout of paramLayout):
 *   wte, wpe, c_attn.weight, c_fc.weight ~ N(0, 0.02)
 *   attn.c_proj.weight, mlp.c_proj.weight ~ N(0, 0.02 / sqrt(2 * layers))  (residual projections)
 *   biases = 0, LayerNorm weight = 1, LayerNorm bias = 0.
 * Each tensor draws from its own stream seeded by (seed, name), so values depend only on the seed
 * and the parameter's name: the same bytes on every backend, process and machine.
 */
export function initParams(config: GPTConfig, seed: number): Float32Array {
  validateConfig(config);
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.totalSize);
  const residualStd = INIT_STD / Math.sqrt(2 * config.layers);
  for (const entry of layout.entries) {
    const view = flat.subarray(entry.offset, entry.offset + entry.size);
    const n = entry.name;
    if (n.endsWith('.bias')) continue; // zeros (includes LayerNorm biases)
    if (/ln_[12f]\.weight$/.test(n)) {
      view.fill(1);
      continue;
    }
    const std = n.endsWith('c_proj.weight') ? residualStd : INIT_STD;
    const rng = new Rng(seed, hashString(n));
    for (let i = 0; i < view.length; i++) view[i] = std * rng.normal();
  }
  return flat;
}
