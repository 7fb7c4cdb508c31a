/**
 * SwiGLU (Shazeer 2020), the Llama MLP's gate:  h = silu(g) * u,  silu(g) = g * sigmoid(g),
 * with g = x W_gate and u = x W_up (both [..., F]).
 *
 * Backward, with s = sigmoid(g):
 *   du = dh * silu(g)
 *   dg = dh * u * s * (1 + g (1 - s))
 */
import * as tf from '@tensorflow/tfjs-core';
import { share } from './layer.js';

/** What backward reads: g and u (null when forward ran with train = false). */
export interface SwiGLUSaved {
  g: tf.Tensor | null;
  u: tf.Tensor | null;
  release(): void;
}

/** g, u [..., F] -> h [..., F]; with train, keeps handles on g and u for backward. */
export function swigluForward(g: tf.Tensor, u: tf.Tensor, train: boolean): { y: tf.Tensor; saved: SwiGLUSaved } {
  const y = tf.tidy(() => tf.mul(tf.mul(g, tf.sigmoid(g)), u));
  if (!train) return { y, saved: { g: null, u: null, release: () => undefined } };
  const sg = share(g);
  const su = share(u);
  let released = false;
  return {
    y,
    saved: {
      g: sg,
      u: su,
      release: () => {
        if (released) return;
        released = true;
        tf.dispose([sg, su]);
      },
    },
  };
}

/** dh [..., F] -> dg, du [..., F]; releases `saved`. */
export function swigluBackward(saved: SwiGLUSaved, dh: tf.Tensor): { dg: tf.Tensor; du: tf.Tensor } {
  const { g, u } = saved;
  if (g === null || u === null) throw new Error('SwiGLU.backward: forward ran with train = false, nothing was saved');
  const [dg, du] = tf.tidy(() => {
    const s = tf.sigmoid(g);
    const silu = tf.mul(g, s);
    const du = tf.mul(dh, silu);
    const dg = tf.mul(tf.mul(dh, u), tf.mul(s, tf.add(1, tf.mul(g, tf.sub(1, s)))));
    return [dg, du];
  });
  saved.release();
  return { dg, du };
}
