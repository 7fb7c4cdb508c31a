/**
 * The embedding on the host-kernel path (wasm, cpu); see embedding.ts for the math. The gather
 * and the scatter-add run as JS loops over tensor memory (host/tensor-io.ts).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { hostOp, hostRead } from '../host/tensor-io.js';
import { positionOf, type EmbeddingGrads, type EmbeddingLayer, type EmbeddingParams, type TokenBatch } from './embedding.js';
import { SavedState } from './layer.js';

interface HostEmbeddingSaved {
  tokens: Int32Array;
  batch: number;
  positions: Int32Array | undefined;
}

/** Host kernels: a JS row gather straight from the parameter tensors. */
export class HostEmbedding implements EmbeddingLayer {
  /** tokens [B*T] -> x [B, T, C]. */
  forward(params: EmbeddingParams, input: TokenBatch, train = true): { y: tf.Tensor; saved: SavedState<HostEmbeddingSaved> } {
    const { tokens, batch, positions } = input;
    const C = (params.wte.shape as number[])[1];
    const T = tokens.length / batch;
    const wpeT = params.wpe;
    const [y] = hostOp(wpeT ? [params.wte, wpeT] : [params.wte], [[batch, T, C]], ([wte, wpe], [x]) => {
      for (let n = 0; n < tokens.length; n++) {
        const te = tokens[n] * C;
        const dst = n * C;
        if (wpe === undefined) {
          x.set(wte.subarray(te, te + C), dst);
          continue;
        }
        const pe = positionOf(n, T, positions) * C;
        for (let c = 0; c < C; c++) x[dst + c] = wte[te + c] + wpe[pe + c];
      }
    });
    return { y, saved: train ? new SavedState({ tokens, batch, positions }, []) : SavedState.none() };
  }

  /** dy [B, T, C] -> gradients of wte [V, C] and wpe [contextLength, C] as fresh arrays; no input gradient. */
  backward(params: EmbeddingParams, saved: SavedState<HostEmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads<Float32Array> } {
    const [V, C] = params.wte.shape;
    const dwte = new Float32Array(V * C);
    if (params.wpe === undefined) {
      this.backwardInto(saved, dy, dwte, null);
      return { dx: null, dParams: { wte: dwte } };
    }
    const dwpe = new Float32Array(params.wpe.shape[0] * C);
    this.backwardInto(saved, dy, dwte, dwpe);
    return { dx: null, dParams: { wte: dwte, wpe: dwpe } };
  }

  /**
   * The same gradient, ADDED into caller-owned arrays (row-major [V, C] and [contextLength, C]).
   * Needs no parameter values: an engine that shards parameters need not gather them for this.
   */
  backwardInto(saved: SavedState<HostEmbeddingSaved>, dy: tf.Tensor, dwte: Float32Array, dwpe: Float32Array | null): void {
    const { tokens, positions } = saved.take('Embedding');
    const [, T, C] = dy.shape as number[];
    hostRead([dy], ([g]) => {
      for (let n = 0; n < tokens.length; n++) {
        const src = n * C;
        const te = tokens[n] * C;
        const pe = positionOf(n, T, positions) * C;
        for (let c = 0; c < C; c++) {
          const v = g[src + c];
          dwte[te + c] += v;
          if (dwpe !== null) dwpe[pe + c] += v;
        }
      }
    });
    saved.release();
  }
}
