/**
 * Token + learned position embedding:  x[b, t] = wte[tokens[b, t]] + wpe[t]   -> [B, T, C]
 * Backward scatter-adds dx rows:  dwte[tokens[b, t]] += dx[b, t],  dwpe[t] += dx[b, t].
 * (The scatter runs on the host on every backend: UnsortedSegmentSum, tf.gather's gradient, is not
 * registered on wasm, and the gradient ends up in a host array anyway.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostOp, hostRead } from '../host/tensor-io.js';
import { SavedState } from './layer.js';
import type { ParamGrads } from './layer.js';

export interface EmbeddingParams {
  /** Token embedding [V, C] (also the tied output head). */
  wte: tf.Tensor;
  /** Position embedding [contextLength, C]. */
  wpe: tf.Tensor;
}

/** A micro-batch of token ids: `batch` rows of `tokens.length / batch` positions. */
export interface TokenBatch {
  tokens: Int32Array;
  batch: number;
}

interface EmbeddingSaved {
  tokens: Int32Array;
  batch: number;
}

abstract class EmbeddingBase {
  abstract forward(params: EmbeddingParams, input: TokenBatch, train?: boolean): { y: tf.Tensor; saved: SavedState<EmbeddingSaved> };

  protected save(input: TokenBatch, train: boolean): SavedState<EmbeddingSaved> {
    return train ? new SavedState({ tokens: input.tokens, batch: input.batch }, []) : SavedState.none();
  }

  /** dy [B, T, C] -> gradients of wte [V, C] and wpe [contextLength, C]; no input gradient. */
  backward(params: EmbeddingParams, saved: SavedState<EmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: ParamGrads } {
    const [V, C] = params.wte.shape;
    const dwte = new Float32Array(V * C);
    const dwpe = new Float32Array(params.wpe.shape[0] * C);
    this.backwardInto(saved, dy, dwte, dwpe);
    return { dx: null, dParams: { wte: dwte, wpe: dwpe } };
  }

  /**
   * The same gradient, ADDED into caller-owned arrays (row-major [V, C] and [contextLength, C]).
   * Needs no parameter values: an engine that shards parameters need not gather them for this.
   */
  backwardInto(saved: SavedState<EmbeddingSaved>, dy: tf.Tensor, dwte: Float32Array, dwpe: Float32Array): void {
    const { tokens } = saved.take('Embedding');
    const [, T, C] = dy.shape as number[];
    hostRead([dy], ([g]) => {
      for (let n = 0; n < tokens.length; n++) {
        const src = n * C;
        const te = tokens[n] * C;
        const pe = (n % T) * C;
        for (let c = 0; c < C; c++) {
          const v = g[src + c];
          dwte[te + c] += v;
          dwpe[pe + c] += v;
        }
      }
    });
    saved.release();
  }
}

/** Host kernels: a JS row gather straight from the parameter tensors. */
export class HostEmbedding extends EmbeddingBase {
  forward(params: EmbeddingParams, input: TokenBatch, train = true): { y: tf.Tensor; saved: SavedState<EmbeddingSaved> } {
    const { tokens, batch } = input;
    const C = (params.wte.shape as number[])[1];
    const T = tokens.length / batch;
    const [y] = hostOp([params.wte, params.wpe], [[batch, T, C]], ([wte, wpe], [x]) => {
      for (let n = 0; n < tokens.length; n++) {
        const te = tokens[n] * C;
        const pe = (n % T) * C;
        const dst = n * C;
        for (let c = 0; c < C; c++) x[dst + c] = wte[te + c] + wpe[pe + c];
      }
    });
    return { y, saved: this.save(input, train) };
  }
}

/** Generic kernels: tf.gather. */
export class TfEmbedding extends EmbeddingBase {
  forward(params: EmbeddingParams, input: TokenBatch, train = true): { y: tf.Tensor; saved: SavedState<EmbeddingSaved> } {
    const { tokens, batch } = input;
    const C = (params.wte.shape as number[])[1];
    const T = tokens.length / batch;
    const y = tf.tidy(() => {
      const tok = tf.gather(params.wte, tf.tensor1d(tokens, 'int32')); // [B*T, C]
      const pos = tf.slice(params.wpe, [0, 0], [T, C]); // [T, C]
      return tf.add(tf.reshape(tok, [batch, T, C]), pos);
    });
    return { y, saved: this.save(input, train) };
  }
}
