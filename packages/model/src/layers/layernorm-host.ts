/**
 * LayerNorm on the host-kernel path (wasm, cpu); see layernorm.ts for the math. Gradients come
 * back as Float32Arrays.
 */
import * as tf from '@tensorflow/tfjs-core';
import { simdOp } from '../host/simd.js';
import { hostOp, hostTake } from '../host/tensor-io.js';
import type { ForwardResult, Layer } from './layer.js';
import { SavedState, disposeAll, share } from './layer.js';
import type { LayerNormParams } from './layernorm.js';

interface HostSaved {
  x: tf.Tensor;
  /** Per-row mean and 1 / sqrt(var + eps), [N]. */
  mean: tf.Tensor;
  rstd: tf.Tensor;
}

/** Host kernels: SIMD on wasm when C % 4 == 0 (simd.ts), else one JS pass per row (~1 ms for [1024, 128]). */
export class HostLayerNorm implements Layer<LayerNormParams, SavedState<HostSaved>> {
  constructor(readonly eps: number) {}

  forward(params: LayerNormParams, x: tf.Tensor, train = true): ForwardResult<SavedState<HostSaved>> {
    const C = x.shape[x.shape.length - 1];
    const N = x.size / C;
    const eps = this.eps;
    const outs = [x.shape, [N], [N]];
    const [y, mean, rstd] =
      (C % 4 === 0
        ? simdOp([x, params.weight, params.bias], outs, (k, [xp, gp, bp], [yp, mp, rp]) => k.layerNormForward(xp, gp, bp, yp, mp, rp, N, C, eps))
        : null) ?? hostOp([x, params.weight, params.bias], outs, ([xv, g, b], [yv, m, r]) => layerNormRows(xv, g, b, yv, m, r, N, C, eps));
    if (!train) {
      disposeAll(mean, rstd);
      return { y, saved: SavedState.none() };
    }
    const xs = share(x);
    return { y, saved: new SavedState({ x: xs, mean, rstd }, [xs, mean, rstd]) };
  }

  backward(params: LayerNormParams, saved: SavedState<HostSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: Float32Array; bias: Float32Array } } {
    const { x, mean, rstd } = saved.take('LayerNorm');
    const C = x.shape[x.shape.length - 1];
    const N = x.size / C;
    const ins = [x, dy, params.weight, mean, rstd];
    const [dx, dW, dB] =
      (C % 4 === 0
        ? simdOp(ins, [x.shape, [C], [C]], (k, [xp, dyp, gp, mp, rp], [dxp, dwp, dbp]) =>
            k.layerNormBackward(xp, dyp, gp, mp, rp, dxp, dwp, dbp, N, C),
          )
        : null) ??
      hostOp(ins, [x.shape, [C], [C]], ([xv, dyv, g, m, r], [dxv, dw, db]) => layerNormRowsBackward(xv, dyv, g, m, r, dxv, dw, db, N, C));
    saved.release();
    return { dx, dParams: { weight: hostTake(dW), bias: hostTake(dB) } };
  }
}

/** Forward over N rows of width C; also stores each row's mean and rstd. */
function layerNormRows(
  x: Float32Array,
  g: Float32Array,
  b: Float32Array,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  N: number,
  C: number,
  eps: number,
): void {
  for (let r = 0; r < N; r++) {
    const o = r * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += x[o + c];
    const m = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = x[o + c] - m;
      v += d * d;
    }
    const rs = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) y[o + c] = (x[o + c] - m) * rs * g[c] + b[c];
    mean[r] = m;
    rstd[r] = rs;
  }
}

/** Backward over N rows: writes dx, dW = sum_rows dy * norm and dB = sum_rows dy. */
function layerNormRowsBackward(
  x: Float32Array,
  dy: Float32Array,
  g: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  dx: Float32Array,
  dWOut: Float32Array,
  dBOut: Float32Array,
  N: number,
  C: number,
): void {
  const dW = new Float64Array(C);
  const dB = new Float64Array(C);
  for (let r = 0; r < N; r++) {
    const o = r * C;
    const m = mean[r];
    const rs = rstd[r];
    let sumD = 0;
    let sumDN = 0;
    for (let c = 0; c < C; c++) {
      const n = (x[o + c] - m) * rs;
      const d = dy[o + c];
      const dn = d * g[c];
      sumD += dn;
      sumDN += dn * n;
      dW[c] += d * n;
      dB[c] += d;
    }
    const mD = sumD / C;
    const mDN = sumDN / C;
    for (let c = 0; c < C; c++) {
      const n = (x[o + c] - m) * rs;
      dx[o + c] = rs * (dy[o + c] * g[c] - mD - n * mDN);
    }
  }
  dWOut.set(dW);
  dBOut.set(dB);
}
