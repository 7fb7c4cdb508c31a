/**
 * The tied head and cross-entropy on the host-kernel path (wasm, cpu); see lm-head.ts for the
 * math. The loss is computed on the host and returned as a resolved promise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { simdKernels, simdOp } from '../host/simd.js';
import { hostMutate, hostRead, hostTake } from '../host/tensor-io.js';
import { SavedState, disposeAll } from './layer.js';
import type { LMHead, LMHeadParams, LossForward } from './lm-head.js';
import { rowsOf } from './lm-head.js';
import { hostTranspose } from './linear-host.js';

interface HostHeadSaved {
  /** Shape of the input x, to give dx the same shape. */
  xShape: number[];
  x2: tf.Tensor;
  probs: tf.Tensor;
  targets: Int32Array;
  count: number;
}

/**
 * The two products of logits = x wte^T going backward: dx = dlogits wte and dwte = dlogits^T x
 * (rows: dlogits [N, V], wte [V, C], x [N, C]). In the SIMD GEMMs on wasm (nothing packed or
 * transposed), else plain 2-D matMuls with explicit transposes.
 */
export function logitsBackward(dlogits: tf.Tensor, wte: tf.Tensor, x2: tf.Tensor): { dx2: tf.Tensor; dwte: Float32Array } {
  const [N, V] = dlogits.shape;
  const C = (wte.shape as number[])[1];
  if (N % 4 === 0 && V % 4 === 0 && C % 8 === 0 && simdKernels() !== null) {
    const [dxs, dw] = simdOp([dlogits, wte, x2], [[N, C], [V, C]], (k, [dl, w, x], [dxp, dwp]) => {
      k.gemmNN(dl, w, 0, dxp, N, V, C, false);
      k.gemmTN(dl, x, dwp, V, N, C);
    }) as tf.Tensor[];
    return { dx2: dxs, dwte: hostTake(dw) };
  }
  const dx2 = tf.matMul(dlogits as tf.Tensor2D, wte as tf.Tensor2D); // [N, V] x [V, C]
  const xT = hostTranspose(x2); // [C, N]
  const dwteT = tf.matMul(xT as tf.Tensor2D, dlogits as tf.Tensor2D); // [C, N] x [N, V]
  const dwte = hostTake(hostTranspose(dwteT)); // [C, V] -> [V, C]
  disposeAll(xT, dwteT);
  return { dx2, dwte };
}

/** dx = dlogits wte alone (a frozen head: no dwte), by the SIMD GEMM where it applies. */
export function logitsInputGrad(dlogits: tf.Tensor, wte: tf.Tensor): tf.Tensor {
  const [N, V] = dlogits.shape;
  const C = (wte.shape as number[])[1];
  if (N % 4 === 0 && V % 4 === 0 && C % 8 === 0 && simdKernels() !== null) {
    const [dxs] = simdOp([dlogits, wte], [[N, C]], (k, [dl, w], [dxp]) => k.gemmNN(dl, w, 0, dxp, N, V, C, false)) as tf.Tensor[];
    return dxs;
  }
  return tf.matMul(dlogits as tf.Tensor2D, wte as tf.Tensor2D); // [N, V] x [V, C]
}

/** -log p[target] per counted row, summed; exact log-sum-exp from the logits when p underflows. */
function sumNegLogLik(logits: Float32Array, probs: Float32Array, targets: Int32Array, V: number): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let n = 0; n < targets.length; n++) {
    const t = targets[n];
    if (t < 0) continue;
    count++;
    const p = probs[n * V + t];
    if (p > 1e-30) {
      sum -= Math.log(p);
    } else {
      const o = n * V;
      let max = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[o + j] - max);
      sum += Math.log(s) + max - logits[o + t];
    }
  }
  return { sum, count };
}

/**
 * Host kernels: logits by XNNPACK's plain 2-D matMul against wte^T, TF.js softmax (~2-3 ms for
 * [1024, 2048], where logSoftmax takes ~20-45 ms), the SIMD cross-entropy gradient, and dx / dwte
 * by the SIMD GEMMs (nothing packed or transposed). Other shapes and cpu: plain 2-D matMuls with
 * explicit transposes and a JS pass over the probabilities.
 */
export class HostLMHead implements LMHead<SavedState<HostHeadSaved>> {
  logits(params: LMHeadParams, x: tf.Tensor): tf.Tensor {
    const x2 = rowsOf(x);
    const wT = params.wteT ?? hostTranspose(params.wte);
    const logits = tf.matMul(x2, wT as tf.Tensor2D); // [N, C] x [C, V]
    if (wT !== params.wteT) wT.dispose();
    x2.dispose();
    return logits;
  }

  forward(params: LMHeadParams, x: tf.Tensor, targets: Int32Array, train = true): LossForward<SavedState<HostHeadSaved>> {
    const V = params.wte.shape[0];
    const logits = this.logits(params, x);
    const probs = tf.softmax(logits);
    const { sum, count } = hostRead([logits, probs], ([l, p]) => sumNegLogLik(l, p, targets, V));
    logits.dispose();
    const loss = Promise.resolve(count > 0 ? sum / count : 0);
    if (!train) {
      probs.dispose();
      return { loss, count, saved: SavedState.none() };
    }
    const x2 = rowsOf(x);
    return { loss, count, saved: new SavedState({ xShape: x.shape, x2, probs, targets, count }, [x2, probs]) };
  }

  backward(params: LMHeadParams, saved: SavedState<HostHeadSaved>, dLoss: number): { dx: tf.Tensor; dParams: { wte?: Float32Array } } {
    const { xShape, x2, probs, targets, count } = saved.take('LMHead');
    const s = count > 0 ? dLoss / count : 0;
    const dlogits = this.dlogits(probs, targets, s); // [N, V]
    const { dx2, dwte } = params.frozen ? { dx2: logitsInputGrad(dlogits, params.wte), dwte: undefined } : logitsBackward(dlogits, params.wte, x2);
    const dx = tf.reshape(dx2, xShape);
    disposeAll(dx2, dlogits === probs ? null : dlogits);
    saved.release();
    return { dx, dParams: dwte ? { wte: dwte } : {} };
  }

  /** (p - onehot(target)) * s per counted row, 0 for masked rows: SIMD on wasm, else in place in JS. */
  private dlogits(probs: tf.Tensor, targets: Int32Array, s: number): tf.Tensor {
    const [N, V] = probs.shape;
    if (V % 4 === 0 && simdKernels() !== null) {
      const ids = tf.tensor1d(Float32Array.from(targets)); // float ids: exact below 2^24
      const [dl] = simdOp([probs, ids], [[N, V]], (k, [p, t], [out]) => k.crossEntropyGrad(p, t, out, N, V, s)) as tf.Tensor[];
      ids.dispose();
      return dl;
    }
    return hostMutate(probs, (p) => {
      for (let n = 0; n < N; n++) {
        const o = n * V;
        const t = targets[n];
        if (t < 0) {
          p.fill(0, o, o + V);
          continue;
        }
        for (let j = 0; j < V; j++) p[o + j] *= s;
        p[o + t] -= s;
      }
    });
  }
}
