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
 *
 * Memory: as in lm-head-tf.ts, no one-hot is made (the target logit is gathered at the (row,
 * target row) pairs, and backward writes probs - 1 there with tf.tensorScatterUpdate), and each
 * [N, |V_t|] tensor is disposed as soon as the next exists: at most two at once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { constant, rowIndices } from '../layers/constants.js';
import type { EmbeddingGrads, EmbeddingParams } from '../layers/embedding.js';
import { positionGradient, positionRows } from '../layers/embedding-tf.js';
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

/**
 * Global targets [N] (int32) -> the pairs (n, target row on this shard) [N, 2] int32 (clamped
 * into the shard) and the in-shard mask [N] (float32 1/0).
 */
function shardTargetPairs(ids: tf.Tensor1D, vocabStart: number, Vt: number): [tf.Tensor2D, tf.Tensor1D] {
  return tf.tidy(() => {
    const { rows, inShard } = shardRows(ids, vocabStart, Vt);
    const pairs = tf.concat([rowIndices(ids.size), tf.expandDims(rows, 1)], 1) as tf.Tensor2D; // [N, 2]
    return [pairs, tf.reshape(inShard, [-1]) as tf.Tensor1D];
  });
}

interface EmbeddingSaved {
  /** The token ids [N], int32, on the device. */
  ids: tf.Tensor1D;
  /** Packed rows' positions [N] (host), or undefined. */
  positions?: Int32Array;
}

export class TfVocabParallelEmbedding implements VocabParallelEmbeddingLayer {
  constructor(private readonly group: TensorParallelGroup, private readonly vocabStart: number) {}

  /** tokens [B*T] -> x [B, T, C]: this rank's rows, all-reduced, plus wpe. */
  async forward(p: EmbeddingParams, tokens: Int32Array, batch: number, train = true, positions?: Int32Array): Promise<{ y: tf.Tensor; saved: SavedState<EmbeddingSaved> }> {
    const [Vt, C] = p.wte.shape as number[];
    const T = tokens.length / batch;
    const ids = tf.tensor1d(tokens, 'int32'); // the micro-batch's one upload of the ids
    let y: tf.Tensor;
    try {
      const partial = tf.tidy(() => {
        const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
        // gatherND, not gather: tfjs-node's GatherV2 reads its indices back to the host to check bounds.
        return tf.reshape(tf.mul(tf.gatherND(p.wte, tf.expandDims(rows, 1)), inShard), [batch, T, C]); // [N, C] -> [B, T, C], 0 off-shard
      });
      let summed: tf.Tensor;
      try {
        summed = await allReduceTensor(partial, this.group);
      } finally {
        partial.dispose();
      }
      const wpe = p.wpe;
      y = wpe === undefined ? summed : tf.tidy(() => tf.add(summed, positionRows(wpe, batch, T, positions)));
      if (y !== summed) summed.dispose();
    } catch (err) {
      ids.dispose();
      throw err;
    }
    if (!train) {
      ids.dispose();
      return { y, saved: SavedState.none() };
    }
    return { y, saved: new SavedState({ ids, positions }, [ids]) };
  }

  /** dy [B, T, C] -> dwte [|V_t|, C] (this rank's rows, scatterND: duplicates sum) and dwpe [contextLength, C]. */
  backward(p: EmbeddingParams, saved: SavedState<EmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads<tf.Tensor> } {
    const { ids, positions } = saved.take('VocabParallelEmbedding');
    const [Vt, C] = p.wte.shape;
    const N = ids.size;
    const dwte = tf.tidy(() => {
      const { rows, inShard } = shardRows(ids, this.vocabStart, Vt);
      const updates = tf.mul(tf.reshape(dy, [N, C]), inShard); // off-shard rows add 0 (at a clamped row)
      return tf.scatterND(tf.reshape(rows, [N, 1]), updates, [Vt, C]);
    });
    const dwpe = p.wpe === undefined ? undefined : positionGradient(dy, p.wpe.shape[0], positions); // after dwte: the [N, C] updates are freed by then
    saved.release();
    return { dx: null, dParams: dwpe === undefined ? { wte: dwte } : { wte: dwte, wpe: dwpe } };
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
      localMax.dispose();
      if (this.group.size > 1) await this.group.allReduce(max, { op: 'max' });
      const maxT = tf.tensor1d(max, 'float32');
      held.push(maxT);
      // exp(logits - max), and per row [S_n (this rank's part), target logit - max (0 off-shard)].
      const shifted = tf.tidy(() => tf.sub(logits, tf.expandDims(maxT, 1))); // [N, Vt]
      held.push(shifted);
      disposeAll(logits, maxT);
      const target = tf.tidy(() => {
        const [pairs, inShard] = shardTargetPairs(ids, this.vocabStart, Vt);
        return tf.mul(tf.gatherND(shifted, pairs), inShard); // [N]
      });
      held.push(target);
      const e = tf.exp(shifted);
      held.push(e);
      shifted.dispose();
      const both = tf.tidy(() => tf.concat([tf.sum(e, 1), target])); // [2N]
      held.push(both);
      const sums = await downloadForCollective(both);
      if (this.group.size > 1) await this.group.allReduce(sums, { op: 'sum' });
      // loss_n = log S_n + m_n - logit_n[target_n] = log S_n - (logit - max), from the host arrays in hand
      let total = 0;
      for (let n = 0; n < N; n++) if (targets[n] >= 0) total += Math.log(sums[n]) - sums[N + n];
      const count = countTargets(targets);
      const loss = Promise.resolve(count > 0 ? total / count : 0);
      if (!train) return { loss, count, saved: SavedState.none() };
      disposeAll(target, both);
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

  /**
   * dLoss -> dx [..., C] (all-reduced) and dwte [|V_t|, C] (a tensor the caller owns), as
   * dx = ((probs - onehot) wte) r and dwte = (probs - onehot)^T (x r) with the row factor
   * r = dLoss / M on counted rows, 0 on masked ones; onehot is 1 at in-shard targets only.
   */
  async backward(p: LMHeadParams, saved: SavedState<HeadSaved>, dLoss: number): Promise<{ dx: tf.Tensor; dParams: { wte: tf.Tensor } }> {
    const { xShape, x2, probs, ids, count } = saved.take('VocabParallelHead');
    const Vt = p.wte.shape[0];
    const scale = tf.scalar(count > 0 ? dLoss / count : 0); // varies per call: a fresh 4-byte upload
    const rowFactor = tf.tidy(() => tf.mul(tf.expandDims(tf.cast(tf.greaterEqual(ids, constant(0, 'int32')), 'float32'), 1), scale)); // [N, 1]
    const [pairs, inShard] = shardTargetPairs(ids, this.vocabStart, Vt);
    // probs - onehot: probs with p - 1 written at in-shard targets (p - 0, unchanged, elsewhere)
    const residual = tf.tidy(() => tf.tensorScatterUpdate(probs, pairs, tf.sub(tf.gatherND(probs, pairs), inShard))); // [N, Vt]
    probs.dispose(); // dead now; release() below disposes the rest
    const dx2 = tf.tidy(() => tf.mul(tf.matMul(residual as tf.Tensor2D, p.wte as tf.Tensor2D), rowFactor)); // [N, C] partial
    const dwte = tf.tidy(() => tf.matMul(residual as tf.Tensor2D, tf.mul(x2, rowFactor) as tf.Tensor2D, true, false)); // [Vt, C]
    disposeAll(residual, rowFactor, pairs, inShard, scale);
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
