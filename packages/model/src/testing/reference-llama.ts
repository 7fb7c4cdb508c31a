/**
 * A straightforward Llama written with plain TF.js ops and differentiated by tf.grads: the
 * reference the explicit backward (layers/llama-block.ts, rmsnorm.ts, rope.ts, swiglu.ts) is
 * tested against (tests only). Written from the published architecture: RoPE by explicit angle
 * tables per (position, pair), repeat_kv by a gather of heads, SwiGLU, RMSNorm.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from '../config.js';
import { kvHeadsOf } from '../config.js';
import { paramLayout } from '../layout.js';
import { lossAndGradsOf } from './reference-gpt.js';
import { refAttention, refTiedHeadLoss } from './reference-layers.js';

function refRmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  return tf.mul(tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
}

/** x W with W [in, out] (no bias). */
function refMatMul(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const [inDim, outDim] = w.shape as [number, number];
  return tf.reshape(tf.matMul(tf.reshape(x, [-1, inDim]), w as tf.Tensor2D), [...x.shape.slice(0, -1), outDim]);
}

/** HF rotate_half RoPE on x [B, T, H D] with inverse frequencies `inv` [D/2]. */
function refRope(x: tf.Tensor, heads: number, inv: Float64Array): tf.Tensor {
  const [B, T, W] = x.shape as [number, number, number];
  const D = W / heads;
  const half = D / 2;
  const angles = Float32Array.from({ length: T * half }, (_, i) => Math.floor(i / half) * inv[i % half]);
  const a = tf.reshape(tf.tensor(angles), [1, T, 1, half]);
  const [c, s] = [tf.cos(a), tf.sin(a)];
  const h = tf.reshape(x, [B, T, heads, D]);
  const x1 = tf.slice(h, [0, 0, 0, 0], [B, T, heads, half]);
  const x2 = tf.slice(h, [0, 0, 0, half], [B, T, heads, half]);
  // (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
  const y1 = tf.sub(tf.mul(x1, c), tf.mul(x2, s));
  const y2 = tf.add(tf.mul(x2, c), tf.mul(x1, s));
  return tf.reshape(tf.concat([y1, y2], 3), [B, T, W]);
}

/** KV heads [B, T, KV D] -> [B, T, H D], query head h reading KV head floor(h / (H / KV)). */
function refRepeatKv(x: tf.Tensor, heads: number, kv: number): tf.Tensor {
  const [B, T, W] = x.shape as [number, number, number];
  const D = W / kv;
  // [H, KV] selection matrix: a gather as a matMul (differentiable on wasm)
  const pick = tf.tensor2d(Float32Array.from({ length: heads * kv }, (_, i) => (Math.floor(Math.floor(i / kv) / (heads / kv)) === i % kv ? 1 : 0)), [heads, kv]);
  const perHead = tf.transpose(tf.reshape(x, [B * T, kv, D]), [0, 2, 1]); // [BT, D, KV]
  const picked = tf.reshape(tf.matMul(tf.reshape(perHead, [B * T * D, kv]), pick, false, true), [B * T, D, heads]);
  return tf.reshape(tf.transpose(picked, [0, 2, 1]), [B, T, heads * D]);
}

/** Plain inverse frequencies theta^(-2i/D) (tests use no rope scaling). */
function refInverseFrequencies(config: GPTConfig): Float64Array {
  const D = config.dModel / config.heads;
  return Float64Array.from({ length: D / 2 }, (_, i) => Math.pow(config.ropeTheta ?? 10000, -(2 * i) / D));
}

/** Mean cross-entropy of the Llama whose parameters are `ps` (one tensor per layout entry). */
export function referenceLlamaLoss(config: GPTConfig, ps: tf.Tensor[], tokens: Int32Array, targets: Int32Array, batch: number): tf.Scalar {
  const layout = paramLayout(config);
  const P = new Map(layout.entries.map((e, i) => [e.name, ps[i]]));
  const get = (n: string): tf.Tensor => P.get(n) as tf.Tensor;
  const eps = config.layerNormEps;
  const H = config.heads;
  const KV = kvHeadsOf(config);
  const inv = refInverseFrequencies(config);
  const [V, C] = get('wte.weight').shape as [number, number];
  const T = tokens.length / batch;
  const oneHot = tf.cast(tf.oneHot(tf.tensor1d(tokens, 'int32'), V), 'float32');
  let x = tf.reshape(tf.matMul(oneHot, get('wte.weight') as tf.Tensor2D), [batch, T, C]);
  for (let i = 0; i < config.layers; i++) {
    const h = `h.${i}`;
    const n1 = refRmsNorm(x, get(`${h}.ln_1.weight`), eps);
    const q = refRope(refMatMul(n1, get(`${h}.attn.q_proj.weight`)), H, inv);
    const k = refRepeatKv(refRope(refMatMul(n1, get(`${h}.attn.k_proj.weight`)), KV, inv), H, KV);
    const v = refRepeatKv(refMatMul(n1, get(`${h}.attn.v_proj.weight`)), H, KV);
    x = tf.add(x, refMatMul(refAttention(tf.concat([q, k, v], 2), H), get(`${h}.attn.o_proj.weight`)));
    const n2 = refRmsNorm(x, get(`${h}.ln_2.weight`), eps);
    const g = refMatMul(n2, get(`${h}.mlp.gate_proj.weight`));
    const u = refMatMul(n2, get(`${h}.mlp.up_proj.weight`));
    x = tf.add(x, refMatMul(tf.mul(tf.mul(g, tf.sigmoid(g)), u), get(`${h}.mlp.down_proj.weight`)));
  }
  const head = P.get('lm_head.weight') ?? get('wte.weight');
  return refTiedHeadLoss(refRmsNorm(x, get('ln_f.weight'), eps), head, targets);
}

/** Loss and gradient (flat, layout order) of the reference Llama by tf.grads. */
export function referenceLlamaLossAndGrads(config: GPTConfig, flat: Float32Array, tokens: Int32Array, targets: Int32Array, batch: number): { loss: number; grads: Float32Array } {
  return lossAndGradsOf(config, flat, (xs) => referenceLlamaLoss(config, xs, tokens, targets, batch));
}
