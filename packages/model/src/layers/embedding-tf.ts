/**
 * The embedding with TF.js ops only; see embedding.ts for the math. The token ids cross once per
 * micro-batch (an int32 upload in forward, kept in the saved state for backward); the gather,
 * the scatter-add and both gradients stay on the device.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { EmbeddingGrads, EmbeddingLayer, EmbeddingParams, TokenBatch } from './embedding.js';
import { SavedState } from './layer.js';

interface TfEmbeddingSaved {
  /** The token ids [B*T], int32, on the device. */
  ids: tf.Tensor1D;
  /** Packed rows' positions [B*T] (host), or undefined. */
  positions: Int32Array | undefined;
}

/** wpe rows of a [B, T] batch: wpe[0..T) for every row, or wpe[positions] (packed rows). Inside a tidy. */
export function positionRows(wpe: tf.Tensor, B: number, T: number, positions: Int32Array | undefined): tf.Tensor {
  const C = (wpe.shape as number[])[1];
  if (positions === undefined) return tf.slice(wpe, [0, 0], [T, C]); // [T, C], broadcast over rows
  return tf.reshape(tf.gatherND(wpe, tf.tensor2d(positions, [B * T, 1], 'int32')), [B, T, C]); // [B*T, C] -> [B, T, C]
}

/**
 * dwpe from dy [B, T, C]: the sum over the batch [T, C], zero-padded to [contextLength, C]
 * (positions past T get no gradient). A device op, not tf.zeros (which builds a host array).
 */
export function positionGradient(dy: tf.Tensor, contextLength: number, positions?: Int32Array): tf.Tensor {
  return tf.tidy(() => {
    const [, T, C] = dy.shape as number[];
    if (positions !== undefined) return tf.scatterND(tf.tensor2d(positions, [positions.length, 1], 'int32'), tf.reshape(dy, [positions.length, C]), [contextLength, C]); // packed: rows summed per position
    const perPosition = tf.sum(dy, 0); // [B, T, C] -> [T, C]
    return T < contextLength ? tf.pad(perPosition, [[0, contextLength - T], [0, 0]]) : perPosition;
  });
}

/** Generic kernels: tf.gather forward, tf.scatterND backward. */
export class TfEmbedding implements EmbeddingLayer {
  /** tokens [B*T] -> x [B, T, C]. */
  forward(params: EmbeddingParams, input: TokenBatch, train = true): { y: tf.Tensor; saved: SavedState<TfEmbeddingSaved> } {
    const { tokens, batch, positions } = input;
    const C = (params.wte.shape as number[])[1];
    const T = tokens.length / batch;
    const ids = tf.tensor1d(tokens, 'int32'); // the micro-batch's one upload
    const y = tf.tidy(() => {
      // gatherND, not gather: tfjs-node's GatherV2 reads its indices back to the host to check bounds.
      const tok = tf.gatherND(params.wte, tf.reshape(ids, [ids.size, 1])); // [B*T, C]
      if (params.wpe === undefined) return tf.reshape(tok, [batch, T, C]); // [B, T, C]
      return tf.add(tf.reshape(tok, [batch, T, C]), positionRows(params.wpe, batch, T, positions)); // [B, T, C]
    });
    if (!train) {
      ids.dispose();
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ ids, positions }, [ids]) };
  }

  /**
   * dy [B, T, C] -> dwte [V, C] by scatterND of dy's rows at the token ids (ScatterNd sums
   * duplicate indices, as TensorFlow's scatter_nd does: checked on wasm and cpu against the host
   * scatter-add) and dwpe [contextLength, C]. Tensors the caller owns; no input gradient.
   */
  backward(params: EmbeddingParams, saved: SavedState<TfEmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads<tf.Tensor> } {
    const { ids, positions } = saved.take('Embedding');
    const [V, C] = params.wte.shape;
    const N = ids.size;
    const dwpe = params.wpe === undefined ? undefined : positionGradient(dy, params.wpe.shape[0], positions); // first: its [T, C] batch sum is freed before dwte exists
    const dwte = tf.tidy(() => tf.scatterND(tf.reshape(ids, [N, 1]), tf.reshape(dy, [N, C]), [V, C])); // [N, C] rows -> [V, C]
    saved.release();
    return { dx: null, dParams: dwpe === undefined ? { wte: dwte } : { wte: dwte, wpe: dwpe } };
  }
}
