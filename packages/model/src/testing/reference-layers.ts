/**
 * Straightforward TF.js versions of every layer (differentiable by tf.grads): the references the
 * explicit forward/backward pairs are tested against. Same math as torch_gpt.py.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; tf.grads needs them.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';

export function refLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const v = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.div(xc, tf.sqrt(tf.add(v, eps))), w), b);
}

/** y = x W + b over the last axis. */
export function refLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [inDim, outDim] = w.shape as [number, number];
  return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, inDim]), w as tf.Tensor2D), b), [...x.shape.slice(0, -1), outDim]);
}

/** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function refGelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
}

/** Causal multi-head attention core: qkv [B, T, 3C] -> [B, T, C]. */
export function refAttention(qkv: tf.Tensor, heads: number): tf.Tensor {
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  const hs = C / heads;
  const mask = tf.tensor2d(
    Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)),
    [T, T],
  );
  const [q, k, v] = tf.split(qkv, 3, 2).map((t) => tf.transpose(tf.reshape(t, [B, T, heads, hs]), [0, 2, 1, 3]));
  const att = tf.softmax(tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(hs)), mask));
  return tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [B, T, C]);
}

/** wte[tokens] + wpe[0..T) as a one-hot matMul (tf.gather has no gradient kernel on wasm). */
export function refEmbedding(tokens: Int32Array, batch: number, wte: tf.Tensor, wpe: tf.Tensor): tf.Tensor {
  const [V, C] = wte.shape as [number, number];
  const T = tokens.length / batch;
  const oneHot = tf.cast(tf.oneHot(tf.tensor1d(tokens, 'int32'), V), 'float32'); // [B*T, V]
  return tf.add(tf.reshape(tf.matMul(oneHot, wte as tf.Tensor2D), [batch, T, C]), tf.slice(wpe, [0, 0], [T, C]));
}

/** Mean cross-entropy of logits x wte^T over targets >= 0. */
export function refTiedHeadLoss(x: tf.Tensor, wte: tf.Tensor, targets: Int32Array): tf.Scalar {
  const [V, C] = wte.shape as [number, number];
  const N = targets.length;
  const logp = tf.logSoftmax(tf.matMul(tf.reshape(x, [N, C]), wte as tf.Tensor2D, false, true));
  const maskRows = Float32Array.from(targets, (t) => (t < 0 ? 0 : 1));
  const count = maskRows.reduce((a, b) => a + b, 0);
  const picked = tf.mul(tf.oneHot(tf.tensor1d(Int32Array.from(targets, (t) => Math.max(t, 0)), 'int32'), V), tf.tensor2d(maskRows, [N, 1]));
  return tf.div(tf.neg(tf.sum(tf.mul(picked, logp))), Math.max(count, 1)) as tf.Scalar;
}
