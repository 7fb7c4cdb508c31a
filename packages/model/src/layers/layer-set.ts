/**
 * The one place where the kernel set is chosen per backend. The model code (Block, GPT) is the
 * same everywhere; only the implementation of each layer differs:
 *  - 'host': kernels that work in tensor memory from the host: on wasm a SIMD module sharing the
 *    backend's memory (GEMMs, attention, GELU, LayerNorm, ...), elsewhere plain 2-D tf.matMul
 *    with explicit transposes and JS loops. Chosen on wasm and cpu, where TF.js's transposed and
 *    batched matMuls and transcendental ops are slow. Parameter gradients are Float32Arrays.
 *  - 'tf':   TF.js ops only (batched matMul with transpose flags, tf.softmax, ...), and nothing
 *    crosses to the host on the step path but the int32 ids / targets, the loss (read
 *    asynchronously) and what collectives carry. Chosen on the native backends (tensorflow,
 *    cuda), where those ops are fast and data lives on the device. Parameter gradients are
 *    tensors the caller owns.
 * Both sets are correct on every backend (tests run both on wasm and cpu).
 */
import type { TensorParallelGroup } from '../tensor-parallel/mappings.js';
import type { VocabParallelEmbeddingLayer, VocabParallelHeadLayer } from '../tensor-parallel/vocab-parallel.js';
import { HostVocabParallelEmbedding, HostVocabParallelHead } from '../tensor-parallel/vocab-parallel-host.js';
import { TfVocabParallelEmbedding, TfVocabParallelHead } from '../tensor-parallel/vocab-parallel-tf.js';
import { HostAttention } from './attention-host.js';
import { TfAttention } from './attention-tf.js';
import type { EmbeddingLayer } from './embedding.js';
import { HostEmbedding } from './embedding-host.js';
import { TfEmbedding } from './embedding-tf.js';
import { HostGelu } from './gelu-host.js';
import { TfGelu } from './gelu-tf.js';
import type { Layer, Saved } from './layer.js';
import type { LayerNormParams } from './layernorm.js';
import { HostLayerNorm } from './layernorm-host.js';
import { TfLayerNorm } from './layernorm-tf.js';
import type { LinearParams } from './linear.js';
import { HostLinear } from './linear-host.js';
import { TfLinear } from './linear-tf.js';
import type { LMHead } from './lm-head.js';
import { HostLMHead } from './lm-head-host.js';
import { TfLMHead } from './lm-head-tf.js';
import type { PackedRows } from './segment-mask.js';

export type KernelSet = 'host' | 'tf';

export interface LayerSet {
  kind: KernelSet;
  /** Whether Linear / LMHead backward use weightT / wteT when the params provide them. */
  usesTransposedWeights: boolean;
  layerNorm: Layer<LayerNormParams, Saved>;
  linear: Layer<LinearParams, Saved>;
  attention: Layer<PackedRows | null, Saved>;
  gelu: Layer<null, Saved>;
  /** HostEmbedding (which also has backwardInto) or TfEmbedding. */
  embedding: EmbeddingLayer;
  head: LMHead;
  /** This kernel set's vocab-parallel embedding for a rank holding wte rows [vocabStart, ...). */
  vocabParallelEmbedding(group: TensorParallelGroup, vocabStart: number): VocabParallelEmbeddingLayer;
  /** This kernel set's vocab-parallel tied head and cross-entropy, for the same rows. */
  vocabParallelHead(group: TensorParallelGroup, vocabStart: number): VocabParallelHeadLayer;
}

/** The kernel set for a TF.js backend name (tf.getBackend()). */
export function kernelSetFor(tfBackend: string): KernelSet {
  return tfBackend === 'wasm' || tfBackend === 'cpu' ? 'host' : 'tf';
}

export function makeLayerSet(kind: KernelSet, heads: number, layerNormEps: number): LayerSet {
  if (kind === 'host') {
    const head = new HostLMHead();
    return {
      kind,
      usesTransposedWeights: true,
      layerNorm: new HostLayerNorm(layerNormEps),
      linear: new HostLinear(),
      attention: new HostAttention(heads),
      gelu: new HostGelu(),
      embedding: new HostEmbedding(),
      head,
      vocabParallelEmbedding: (group, vocabStart) => new HostVocabParallelEmbedding(group, vocabStart),
      vocabParallelHead: (group, vocabStart) => new HostVocabParallelHead(group, vocabStart, (p, x) => head.logits(p, x)),
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
    vocabParallelEmbedding: (group, vocabStart) => new TfVocabParallelEmbedding(group, vocabStart),
    vocabParallelHead: (group, vocabStart) => new TfVocabParallelHead(group, vocabStart),
  };
}
