/**
 * Linear on the host-kernel path (wasm, cpu); see linear.ts for the math. Gradients come back as
 * Float32Arrays.
 */
import * as tf from '@tensorflow/tfjs-core';
import { columnSums, transpose } from '../host/math.js';
import { simdKernels, simdOp } from '../host/simd.js';
import { hostOp, hostRead, hostTake } from '../host/tensor-io.js';
import type { ForwardResult, Layer } from './layer.js';
import { SavedState, disposeAll } from './layer.js';
import type { LinearParams, LinearSaved } from './linear.js';
import { rows } from './linear.js';

/** A host-transposed copy of a 2-D tensor: [r, c] -> [c, r] (SIMD 4x4 tiles on wasm when r, c % 4 == 0). */
export function hostTranspose(t: tf.Tensor): tf.Tensor {
  const [r, c] = t.shape;
  const simd = r % 4 === 0 && c % 4 === 0 ? simdOp([t], [[c, r]], (k, [src], [dst]) => k.transpose(src, r, c, dst)) : null;
  return (simd ?? hostOp([t], [[c, r]], ([src], [dst]) => transpose(src, r, c, dst)))[0];
}

/** Column sums of rows [N, w] (the gradient of a bias). */
function hostColumnSums(t: tf.Tensor): Float32Array {
  const [N, w] = t.shape;
  const simd = w % 4 === 0 ? simdOp([t], [[w]], (k, [src], [out]) => k.columnSums(src, N, w, out)) : null;
  return simd !== null ? hostTake(simd[0]) : hostRead([t], ([v]) => columnSums(v, N, w));
}

/**
 * Host kernels. On wasm with the SIMD module, all three products run in its GEMMs (X^T read in
 * place). Otherwise only the plain 2-D matMul(a, b) is fast (XNNPACK ~30 GFLOP/s; the
 * transposeA/transposeB flags run 10-70x slower), so transposed operands are transposed explicitly.
 */
export class HostLinear implements Layer<LinearParams, SavedState<LinearSaved>> {
  forward(params: LinearParams, x: tf.Tensor, train = true): ForwardResult<SavedState<LinearSaved>> {
    const [inDim, outDim] = params.weight.shape;
    const N = rows(x);
    const x2 = tf.reshape(x, [N, inDim]); // [..., in] -> [N, in]
    const y2 = ownGemm(N, inDim, outDim)
      ? (simdOp([x2, params.weight, params.bias], [[N, outDim]], (k, [xp, wp, bp], [yp]) => k.gemmNN(xp, wp, bp, yp, N, inDim, outDim, true)) as tf.Tensor[])[0]
      : tf.fused.matMul({ a: x2 as tf.Tensor2D, b: params.weight as tf.Tensor2D, bias: params.bias });
    const y = tf.reshape(y2, [...x.shape.slice(0, -1), outDim]);
    y2.dispose();
    if (!train) {
      x2.dispose();
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ x2 }, [x2]) };
  }

  backward(params: LinearParams, saved: SavedState<LinearSaved>, dy: tf.Tensor): { dx: tf.Tensor; dParams: { weight: Float32Array; bias: Float32Array } } {
    const { x2 } = saved.take('Linear');
    const [inDim, outDim] = params.weight.shape;
    const N = x2.shape[0];
    const dy2 = tf.reshape(dy, [N, outDim]);
    const wT = params.weightT ?? hostTranspose(params.weight);
    let dx2: tf.Tensor;
    let dW: Float32Array;
    if (ownGemm(N, inDim, outDim)) {
      // dX = dY W^T and dW = X^T dY, both read in place by the SIMD GEMMs (nothing packed or transposed)
      const [dxOut, dWOut] = simdOp([dy2, wT, x2], [[N, inDim], [inDim, outDim]], (k, [dyp, wtp, xp], [dxp, dwp]) => {
        k.gemmNN(dyp, wtp, 0, dxp, N, outDim, inDim, false);
        k.gemmTN(xp, dyp, dwp, inDim, N, outDim);
      }) as tf.Tensor[];
      dx2 = dxOut;
      dW = hostTake(dWOut);
    } else {
      dx2 = tf.matMul(dy2 as tf.Tensor2D, wT as tf.Tensor2D); // dX = dY W^T
      dW = weightGradByMatMul(x2, dy2, inDim, outDim);
    }
    if (wT !== params.weightT) wT.dispose();
    const dx = tf.reshape(dx2, [...dy.shape.slice(0, -1), inDim]);
    dx2.dispose();
    const db = hostColumnSums(dy2);
    dy2.dispose();
    saved.release();
    return { dx, dParams: { weight: dW, bias: db } };
  }
}

/**
 * The SIMD GEMMs (simd.ts) need rows % 4 and widths % 8; they beat XNNPACK's plain matMul here
 * because nothing is packed per call (measured in bench/ops.ts).
 */
function ownGemm(N: number, inDim: number, outDim: number): boolean {
  return N % 4 === 0 && inDim % 8 === 0 && outDim % 8 === 0 && simdKernels() !== null;
}

/**
 * dW with plain 2-D tf.matMul. On wasm XNNPACK packs its right-hand operand (~5 ns per element) while a
 * JS transpose costs ~1.5-3, so the narrower of X [N, in] and dY [N, out] goes on the right:
 *   in <= out: dW^T = dY^T X   [out, N] x [N, in], read back transposed
 *   in >  out: dW   = X^T dY   [in, N] x [N, out]
 */
function weightGradByMatMul(x2: tf.Tensor, dy2: tf.Tensor, inDim: number, outDim: number): Float32Array {
  if (inDim <= outDim) {
    const dyT = hostTranspose(dy2); // [out, N]
    const dWT = tf.matMul(dyT as tf.Tensor2D, x2 as tf.Tensor2D); // [out, in]
    const dW = hostTake(hostTranspose(dWT));
    disposeAll(dyT, dWT);
    return dW;
  }
  const xT = hostTranspose(x2); // [in, N]
  const dW = hostTake(tf.matMul(xT as tf.Tensor2D, dy2 as tf.Tensor2D)); // [in, out]
  xT.dispose();
  return dW;
}
