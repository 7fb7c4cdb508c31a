/**
 * A transformer block split over a tensor-parallel group (Megatron-LM):
 *
 *   attention: ln_1 -> [copy] -> c_attn (column-parallel: this rank's heads' q, k, v)
 *              -> attention over this rank's heads -> c_proj (row-parallel) -> [reduce] -> + bias
 *   MLP:       ln_2 -> [copy] -> c_fc (column-parallel) -> gelu -> c_proj (row-parallel) -> [reduce] -> + bias
 *
 * Y = X A with A split by columns A = [A_1 .. A_T]: rank t computes Y_t = X A_t, no communication.
 * Z = Y B with B split by rows B = [B_1; ..; B_T]: rank t computes Y_t B_t; Z = sum_t Y_t B_t by
 * all-reduce. Two all-reduces per block forward ([reduce]) and two backward (the gradients of the
 * [copy] points). LayerNorms and the row-parallel biases are replicated: their inputs and output
 * gradients are identical on every rank, so are their gradients.
 *
 * The row-parallel Linear runs with a zero bias (its bias is added once, after the reduction);
 * its bias gradient, the column sums of dy, is exactly the real bias's gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BlockParams } from '../layers/block.js';
import { BlockSaved, blockGrads } from '../layers/block.js';
import type { BackwardResult } from '../layers/layer.js';
import { disposeAll } from '../layers/layer.js';
import type { LayerSet } from '../layers/layer-set.js';
import type { PackedRows } from '../layers/segment-mask.js';
import { copyToTensorParallelRegionBackward, reduceFromTensorParallelRegionForward, type TensorParallelGroup } from './mappings.js';

/** Block parameters of one rank: local shards, with the row-parallel biases held apart. */
export interface TPBlockParams {
  /** c_attn and c_fc local column shards; c_proj and mlp.c_proj local row shards with ZERO biases. */
  local: BlockParams;
  projBias: tf.Tensor;
  mlpBias: tf.Tensor;
}

export class TensorParallelBlock {
  constructor(private readonly layers: LayerSet, private readonly group: TensorParallelGroup) {}

  /** x [B, T, C] (identical on every rank) -> y [B, T, C] (identical on every rank). */
  async forward(p: TPBlockParams, x: tf.Tensor, train = true, packed: PackedRows | null = null): Promise<{ y: tf.Tensor; saved: BlockSaved }> {
    const L = this.layers;
    // Each intermediate is freed right after its last use (the layers keep what they save).
    const ln1 = L.layerNorm.forward(p.local.ln1, x, train);
    const qkv = L.linear.forward(p.local.cAttn, ln1.y, train); // [B, T, 3C/T]
    ln1.y.dispose();
    const attn = L.attention.forward(packed, qkv.y, train); // [B, T, C/T] (this rank's heads; packed rows: within each sequence)
    qkv.y.dispose();
    const proj = L.linear.forward(p.local.cProj, attn.y, train); // [B, T, C] partial
    attn.y.dispose();
    const projSum = await reduceFromTensorParallelRegionForward(proj.y, this.group);
    proj.y.dispose();
    const x2 = tf.tidy(() => tf.add(tf.add(x, projSum), p.projBias));
    projSum.dispose();
    const ln2 = L.layerNorm.forward(p.local.ln2, x2, train);
    const fc = L.linear.forward(p.local.cFc, ln2.y, train); // [B, T, 4C/T]
    ln2.y.dispose();
    const act = L.gelu.forward(null, fc.y, train);
    fc.y.dispose();
    const mlp = L.linear.forward(p.local.mlpProj, act.y, train); // [B, T, C] partial
    act.y.dispose();
    const mlpSum = await reduceFromTensorParallelRegionForward(mlp.y, this.group);
    mlp.y.dispose();
    const y = tf.tidy(() => tf.add(tf.add(x2, mlpSum), p.mlpBias));
    disposeAll(x2, mlpSum);
    const saved = new BlockSaved({
      ln1: ln1.saved, cAttn: qkv.saved, attn: attn.saved, cProj: proj.saved,
      ln2: ln2.saved, cFc: fc.saved, gelu: act.saved, mlpProj: mlp.saved,
    });
    return { y, saved };
  }

  /** dy [B, T, C] (identical on every rank) -> dx [B, T, C] and this rank's parameter gradients. */
  async backward(p: TPBlockParams, saved: BlockSaved, dy: tf.Tensor): Promise<BackwardResult> {
    const L = this.layers;
    const s = saved.parts;
    try {
      const mlp = L.linear.backward(p.local.mlpProj, s.mlpProj, dy); // dBias = sum dy: the real bias's gradient
      const act = L.gelu.backward(null, s.gelu, mlp.dx);
      mlp.dx.dispose();
      const fc = L.linear.backward(p.local.cFc, s.cFc, act.dx);
      act.dx.dispose();
      const fcDx = await copyToTensorParallelRegionBackward(fc.dx, this.group);
      fc.dx.dispose();
      const ln2 = L.layerNorm.backward(p.local.ln2, s.ln2, fcDx);
      fcDx.dispose();
      const dx2 = tf.add(dy, ln2.dx); // residual: both branches reach x2
      ln2.dx.dispose();
      const proj = L.linear.backward(p.local.cProj, s.cProj, dx2);
      const attn = L.attention.backward(null, s.attn, proj.dx);
      proj.dx.dispose();
      const qkv = L.linear.backward(p.local.cAttn, s.cAttn, attn.dx);
      attn.dx.dispose();
      const qkvDx = await copyToTensorParallelRegionBackward(qkv.dx, this.group);
      qkv.dx.dispose();
      const ln1 = L.layerNorm.backward(p.local.ln1, s.ln1, qkvDx);
      qkvDx.dispose();
      const dx = tf.add(dx2, ln1.dx);
      disposeAll(dx2, ln1.dx);
      return { dx, dParams: blockGrads({ ln1, qkv, proj, ln2, fc, mlp }) };
    } finally {
      saved.release();
    }
  }
}
