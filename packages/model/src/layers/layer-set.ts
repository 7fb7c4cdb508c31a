/**
 * The one place where the kernel set is chosen per backend. The model code (Block, GPT) is the
 * same everywhere; only the implementation of each layer differs:
 *  - 'host': kernels that work in tensor memory from the host: on wasm a SIMD module sharing the
 *    backend's memory (GEMMs, attention, GELU, LayerNorm, ...), elsewhere plain 2-D tf.matMul
 *    with explicit transposes and JS loops. Chosen on wasm and cpu, where TF.js's transposed and
 *    batched matMuls and transcendental ops are slow.
 *  - 'tf':   TF.js ops only (batched matMul with transpose flags, tf.softmax, ...). Chosen on the
 *    native backends (tensorflow, cuda), where those ops are fast and data lives on the device.
 * Both sets are correct on every backend (tests run both on wasm and cpu).
 */
import type { LayerNormParams } from './layernorm.js';
import { HostLayerNorm, TfLayerNorm } from './layernorm.js';
import type { LinearParams } from './linear.js';
import { HostLinear, TfLinear } from './linear.js';
import { HostAttention, TfAttention } from './attention.js';
import { HostGelu, TfGelu } from './gelu.js';
import { HostEmbedding, TfEmbedding } from './embedding.js';
import type { LMHead } from './lm-head.js';
import { HostLMHead, TfLMHead } from './lm-head.js';
import type { Layer, Saved } from './layer.js';

export type KernelSet = 'host' | 'tf';

export interface LayerSet {
  kind: KernelSet;
  /** Whether Linear / LMHead backward use weightT / wteT when the params provide them. */
  usesTransposedWeights: boolean;
  layerNorm: Layer<LayerNormParams, Saved>;
  linear: Layer<LinearParams, Saved>;
  attention: Layer<null, Saved>;
  gelu: Layer<null, Saved>;
  embedding: HostEmbedding | TfEmbedding;
  head: LMHead;
}

/** The kernel set for a TF.js backend name (tf.getBackend()). */
export function kernelSetFor(tfBackend: string): KernelSet {
  return tfBackend === 'wasm' || tfBackend === 'cpu' ? 'host' : 'tf';
}

export function makeLayerSet(kind: KernelSet, heads: number, layerNormEps: number): LayerSet {
  if (kind === 'host') {
    return {
      kind,
      usesTransposedWeights: true,
      layerNorm: new HostLayerNorm(layerNormEps),
      linear: new HostLinear(),
      attention: new HostAttention(heads),
      gelu: new HostGelu(),
      embedding: new HostEmbedding(),
      head: new HostLMHead(),
    };
  }
  return {
    kind,
    usesTransposedWeights: false,
    layerNorm: new TfLayerNorm(layerNormEps),
    linear: new TfLinear(),
    attention: new TfAttention(heads),
    gelu: new TfGelu(),
    embedding: new TfEmbedding(),
    head: new TfLMHead(),
  };
}
