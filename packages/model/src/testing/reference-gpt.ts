/**
 * A straightforward GPT-2 written with plain TF.js ops and differentiated by tf.grads: the
 * reference the explicit backward is tested against (tests only). Same math as
 * /work/shared/bench/torch_gpt.py.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from '../config.js';
import { paramLayout } from '../layout.js';
import { refAttention, refEmbedding, refGelu, refLayerNorm, refLinear, refTiedHeadLoss } from './reference-layers.js';

/** Mean cross-entropy of the model whose parameters are `ps` (one tensor per layout entry). */
export function referenceLoss(config: GPTConfig, ps: tf.Tensor[], tokens: Int32Array, targets: Int32Array, batch: number): tf.Scalar {
  const layout = paramLayout(config);
  const P = new Map(layout.entries.map((e, i) => [e.name, ps[i]]));
  const get = (n: string): tf.Tensor => P.get(n) as tf.Tensor;
  const eps = config.layerNormEps;
  const ln = (x: tf.Tensor, prefix: string): tf.Tensor => refLayerNorm(x, get(`${prefix}.weight`), get(`${prefix}.bias`), eps);
  const linear = (x: tf.Tensor, prefix: string): tf.Tensor => refLinear(x, get(`${prefix}.weight`), get(`${prefix}.bias`));
  let x = refEmbedding(tokens, batch, get('wte.weight'), get('wpe.weight'));
  for (let i = 0; i < config.layers; i++) {
    const h = `h.${i}`;
    x = tf.add(x, linear(refAttention(linear(ln(x, `${h}.ln_1`), `${h}.attn.c_attn`), config.heads), `${h}.attn.c_proj`));
    x = tf.add(x, linear(refGelu(linear(ln(x, `${h}.ln_2`), `${h}.mlp.c_fc`)), `${h}.mlp.c_proj`));
  }
  return refTiedHeadLoss(ln(x, 'ln_f'), get('wte.weight'), targets);
}

/** Loss and gradient (flat, layout order) of the reference model by tf.grads. */
export function referenceLossAndGrads(
  config: GPTConfig,
  flat: Float32Array,
  tokens: Int32Array,
  targets: Int32Array,
  batch: number,
): { loss: number; grads: Float32Array } {
  return lossAndGradsOf(config, flat, (xs) => referenceLoss(config, xs, tokens, targets, batch));
}

/** Loss and gradient (flat, layout order) by tf.grads of `loss`, a function of one tensor per layout entry. */
export function lossAndGradsOf(config: GPTConfig, flat: Float32Array, lossOf: (ps: tf.Tensor[]) => tf.Scalar): { loss: number; grads: Float32Array } {
  const layout = paramLayout(config);
  const ps = layout.entries.map((e) => tf.tensor(flat.slice(e.offset, e.offset + e.size), e.shape));
  try {
    const f = (...xs: tf.Tensor[]): tf.Scalar => lossOf(xs);
    const { value, grads } = tf.tidy(() => {
      const r = tf.valueAndGrads(f)(ps);
      return { value: r.value, grads: r.grads };
    });
    const loss = value.dataSync()[0];
    const out = new Float32Array(layout.totalSize);
    layout.entries.forEach((e, i) => out.set(grads[i].dataSync(), e.offset));
    tf.dispose([value, ...grads]);
    return { loss, grads: out };
  } finally {
    tf.dispose(ps);
  }
}
