/**
 * The vocab-parallel embedding and head with TF.js ops, on the device; see vocab-parallel.ts for
 * the math and the split. What crosses to the host, per micro-batch and rank, is what the
 * all-reduces carry plus the int32 ids / targets (uploaded once, kept for backward) and the
 * backward's loss-gradient scalar:
 *
 *   embedding forward   ids up [N]; partial x down and summed x up [N, C]
 *   head forward        targets up [N]; row max down and up [N]; sum-exp and target logit
 *                       down [2N]; the sums S up [N] (the only half the device needs)
 *   head backward       dLoss / M up (a scalar); partial dx down and summed dx up [N, C]
 *   embedding backward  nothing
 *
 * A token's row on this rank is its id minus v0 when that lies in [0, |V_t|), else none: rows
 * are gathered (and gradients scattered) at the id clamped into the shard, times a 0/1 in-shard
 * mask, so every op has a static shape.
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant } from '../layers/constants.js';
import type { EmbeddingGrads, EmbeddingParams } from '../layers/embedding.js';
import { positionGradient } from '../layers/embedding-tf.js';
import { SavedState, disposeAll } from '../layers/layer.js';
import type { LMHeadParams, LossForward } from '../layers/lm-head.js';
import { countTargets, rowsOf } from '../layers/lm-head.js';
import { allReduceTensor, downloadForCollective, type TensorParallelGroup } from './mappings.js';
import type { VocabParallelEmbeddingLayer, VocabParallelHeadLayer } from './vocab-parallel.js';

/**
 * Global ids [N] (int32) -> this shard's rows [N] (int32, clamped into [0, Vt)) and the in-shard
 * mask [N, 1] (float32 1/0). Negative (masked) ids are never in a shard.
 */
function shardRows(ids: tf.Tensor1D, vocabStart: number, Vt: number): { rows: tf.Tensor1D; inShard: tf.Tensor } {
  const zero = constant(0, 'int32');
  const local = tf.sub(ids, constant(vocabStart, 'int32'));
  const inside = tf.logicalAnd(tf.greaterEqual(local, zero), tf.less(local, constant(Vt, 'int32')));
  const rows = tf.minimum(tf.maximum(local, zero), constant(Vt - 1, 'int32')) as tf.Tensor1D;
  return { rows, inShard: tf.expandDims(tf.cast(inside, 'float32'), 1) }; // [N] -> [N, 1]
}

interface EmbeddingSaved {
  /** The token ids [N], int32, on the device. */
  ids: tf.Tensor1D;
}

export class TfVocabParallelEmbedding implements VocabParallelEmbeddingLayer {
  constructor(private readonly group: TensorParallelGroup, private readonly vocabStart: number) {}

  /** tokens [B*T] -> x [B, T, C]: this rank's rows, all-reduced, plus wpe. */
  async forward(p: EmbeddingParams, tokens: Int32Array, batch: number, train = true): Promise<{ y: tf.Tensor; saved: SavedState<EmbeddingSaved> }> {
    const [Vt, C] = p.wte.shape as number[];
    const T = tokens.length / batch;
    const ids = tf.tensor1d(tokens, 'int32'); // the micro-batch's one upload of the ids
    let y: tf.Tensor;
    try {
      const partial = tf.tidy(() => {
        const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
        return tf.reshape(tf.mul(tf.gather(p.wte, rows), inShard), [batch, T, C]); // [N, C] -> [B, T, C], 0 off-shard
      });
      let summed: tf.Tensor;
      try {
        summed = await allReduceTensor(partial, this.group);
      } finally {
        partial.dispose();
      }
      y = tf.tidy(() => tf.add(summed, tf.slice(p.wpe, [0, 0], [T, C])));
      summed.dispose();
    } catch (err) {
      ids.dispose();
      throw err;
    }
    if (!train) {
      ids.dispose();
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ ids }, [ids]) };
  }

  /** dy [B, T, C] -> dwte [|V_t|, C] (this rank's rows, scatterND: duplicates sum) and dwpe [contextLength, C]. */
  backward(p: EmbeddingParams, saved: SavedState<EmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads<tf.Tensor> } {
    const { ids } = saved.take('VocabParallelEmbedding');
    const [Vt, C] = p.wte.shape;
    const N = ids.size;
    const dwte = tf.tidy(() => {
      const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
      const updates = tf.mul(tf.reshape(dy, [N, C]), inShard); // off-shard rows add 0 (at a clamped row)
      return tf.scatterND(tf.reshape(rows, [N, 1]), updates, [Vt, C]);
    });
    const dwpe = positionGradient(dy, p.wpe.shape[0]);
    saved.release();
    return { dx: null, dParams: { wte: dwte, wpe: dwpe } };
  }
}

interface HeadSaved {
  xShape: number[];
  /** x as rows [N, C]. */
  x2: tf.Tensor;
  /** This rank's columns of the global softmax [N, |V_t|]. */
  probs: tf.Tensor;
  /** The global targets [N], int32, on the device. */
  ids: tf.Tensor1D;
  count: number;
}

export class TfVocabParallelHead implements VocabParallelHeadLayer {
  constructor(private readonly group: TensorParallelGroup, private readonly vocabStart: number) {}

  async forward(p: LMHeadParams, x: tf.Tensor, targets: Int32Array, train = true): Promise<LossForward<SavedState<HeadSaved>>> {
    const Vt = p.wte.shape[0];
    const N = targets.length;
    const ids = tf.tensor1d(targets, 'int32'); // the micro-batch's one upload of the targets
    const held: tf.Tensor[] = []; // intermediates, freed on the way out (also when a collective throws)
    let idsKept = false;
    try {
      const logits = tf.tidy(() => tf.matMul(rowsOf(x), p.wte as tf.Tensor2D, false, true)); // [N, C] x [C, Vt]
      held.push(logits);
      // The global max per row: this rank's, then a 'max' all-reduce.
      const localMax = tf.max(logits, 1); // [N]
      held.push(localMax);
      const max = await downloadForCollective(localMax);
      if (this.group.size > 1) await this.group.allReduce(max, { op: 'max' });
      const maxT = tf.tensor1d(max, 'float32');
      held.push(maxT);
      // exp(logits - max), and per row [S_n (this rank's part), target logit - max (0 off-shard)].
      const [e, both] = tf.tidy(() => {
        const shifted = tf.sub(logits, tf.expandDims(maxT, 1)); // [N, Vt]
        const e = tf.exp(shifted);
        const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
        const picked = tf.mul(tf.cast(tf.oneHot(rows, Vt), 'float32'), inShard); // [N, Vt]
        return [e, tf.concat([tf.sum(e, 1), tf.sum(tf.mul(shifted, picked), 1)])]; // [2N]
      });
      held.push(e, both);
      const sums = await downloadForCollective(both);
      if (this.group.size > 1) await this.group.allReduce(sums, { op: 'sum' });
      // loss_n = log S_n + m_n - logit_n[target_n] = log S_n - (logit - max), from the host arrays in hand
      let total = 0;
      for (let n = 0; n < N; n++) if (targets[n] >= 0) total += Math.log(sums[n]) - sums[N + n];
      const count = countTargets(targets);
      const loss = Promise.resolve(count > 0 ? total / count : 0);
      if (!train) return { loss, count, saved: SavedState.none() };
      const S = tf.tensor1d(sums.slice(0, N), 'float32');
      const probs = tf.tidy(() => tf.div(e, tf.expandDims(S, 1))); // [N, Vt]
      S.dispose();
      const x2 = rowsOf(x);
      idsKept = true; // the saved state owns the ids now
      return { loss, count, saved: new SavedState<HeadSaved>({ xShape: x.shape, x2, probs, ids, count }, [x2, probs, ids]) };
    } finally {
      disposeAll(...held);
      if (!idsKept) ids.dispose();
    }
  }

  /** dLoss -> dx [..., C] (all-reduced) and dwte [|V_t|, C] (a tensor the caller owns). */
  async backward(p: LMHeadParams, saved: SavedState<HeadSaved>, dLoss: number): Promise<{ dx: tf.Tensor; dParams: { wte: tf.Tensor } }> {
    const { xShape, x2, probs, ids, count } = saved.take('VocabParallelHead');
    const Vt = p.wte.shape[0];
    const [dx2, dwte] = tf.tidy(() => {
      const scale = tf.scalar(count > 0 ? dLoss / count : 0); // varies per call: a fresh 4-byte upload
      const counted = tf.expandDims(tf.cast(tf.greaterEqual(ids, constant(0, 'int32')), 'float32'), 1); // [N, 1]
      const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
      const onehot = tf.mul(tf.cast(tf.oneHot(rows, Vt), 'float32'), inShard); // [N, Vt]
      const dlogits = tf.mul(tf.sub(tf.mul(probs, counted), onehot), scale) as tf.Tensor2D; // [N, Vt]
      return [tf.matMul(dlogits, p.wte as tf.Tensor2D), tf.matMul(dlogits, x2 as tf.Tensor2D, true, false)]; // [N, C] partial, [Vt, C]
    });
    saved.release();
    try {
      const dxSum = await allReduceTensor(dx2, this.group);
      const dx = tf.reshape(dxSum, xShape);
      dxSum.dispose();
      return { dx, dParams: { wte: dwte } };
    } catch (err) {
      dwte.dispose();
      throw err;
    } finally {
      dx2.dispose();
    }
  }
}
