/**
 * TensorParallelBlock over a 2-rank in-process group, with each kernel set: y and dx equal the
 * unsplit Block's, every rank's gradients equal its shard of the unsplit gradients, and with the
 * tf kernels the only host <-> device traffic is what the four all-reduces carry.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { installTransferMeter, transferCounts } from '../device/transfer-meter.js';
import { Block, type BlockParams } from '../layers/block.js';
import type { GradValue } from '../layers/layer.js';
import { makeLayerSet, type KernelSet } from '../layers/layer-set.js';
import { fakeTensorParallelGroups } from '../testing/fake-tp-group.js';
import { randomArray, relError, useBackend } from '../testing/helpers.js';
import type { TensorParallelGroup } from './mappings.js';
import { TensorParallelBlock, type TPBlockParams } from './parallel-block.js';

const B = 2;
const T = 8;
const C = 16;
const HEADS = 4;
const RANKS = 2;

function tensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);
}

function fullParams(): BlockParams {
  const ln = (seed: number) => ({ weight: tf.tidy(() => tf.add(tensor([C], seed, 0.1), 1)), bias: tensor([C], seed + 1, 0.1) });
  const lin = (i: number, o: number, seed: number) => ({ weight: tensor([i, o], seed, 0.2), bias: tensor([o], seed + 1, 0.1) });
  return { ln1: ln(1), cAttn: lin(C, 3 * C, 3), cProj: lin(C, C, 5), ln2: ln(7), cFc: lin(C, 4 * C, 9), mlpProj: lin(4 * C, C, 11) };
}

/** Columns [r w, (r + 1) w) of the last axis. */
function cols(t: tf.Tensor, r: number, w: number): tf.Tensor {
  return tf.slice(t, [...t.shape.slice(0, -1).map(() => 0), r * w], [...t.shape.slice(0, -1), w]);
}

/** Rank r's q, k and v columns (its heads) of c_attn's [.., 3C]. */
function qkvCols(t: tf.Tensor, r: number): tf.Tensor {
  const w = C / RANKS;
  return tf.concat([0, 1, 2].map((part) => tf.slice(t, [...t.shape.slice(0, -1).map(() => 0), part * C + r * w], [...t.shape.slice(0, -1), w])), -1);
}

/** Rows [r h, (r + 1) h). */
function rowsOf(t: tf.Tensor, r: number, h: number): tf.Tensor {
  return tf.slice(t, [r * h, 0], [h, t.shape[1]!]);
}

/** Megatron's shard of rank r: column-parallel c_attn (its heads) and c_fc, row-parallel projections with zero biases. */
function shard(p: BlockParams, r: number): TPBlockParams {
  return {
    local: {
      ln1: p.ln1,
      ln2: p.ln2,
      cAttn: { weight: qkvCols(p.cAttn.weight, r), bias: qkvCols(p.cAttn.bias, r) },
      cProj: { weight: rowsOf(p.cProj.weight, r, C / RANKS), bias: tf.fill([C], 0) },
      cFc: { weight: cols(p.cFc.weight, r, (4 * C) / RANKS), bias: cols(p.cFc.bias, r, (4 * C) / RANKS) },
      mlpProj: { weight: rowsOf(p.mlpProj.weight, r, (4 * C) / RANKS), bias: tf.fill([C], 0) },
    },
    projBias: p.cProj.bias,
    mlpBias: p.mlpProj.bias,
  };
}

/** Rank r's part of a full gradient, by parameter name (replicated ones whole). */
function shardOfGrad(name: string, g: tf.Tensor, r: number): tf.Tensor {
  if (name === 'attn.c_attn.weight' || name === 'attn.c_attn.bias') return qkvCols(g, r);
  if (name === 'mlp.c_fc.weight' || name === 'mlp.c_fc.bias') return cols(g, r, (4 * C) / RANKS);
  if (name === 'attn.c_proj.weight') return rowsOf(g, r, C / RANKS);
  if (name === 'mlp.c_proj.weight') return rowsOf(g, r, (4 * C) / RANKS);
  return tf.clone(g); // LayerNorms and the row-parallel biases are replicated
}

function values(g: GradValue): Float32Array {
  return g instanceof Float32Array ? g : (g.dataSync() as Float32Array).slice();
}

function disposeGrads(grads: Record<string, GradValue>): void {
  tf.dispose(Object.values(grads).filter((g): g is tf.Tensor => g instanceof tf.Tensor));
}

describe.each(['wasm', 'cpu'] as const)('tensor-parallel block on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    installTransferMeter();
  });

  for (const kind of ['host', 'tf'] as KernelSet[]) {
    it(`${kind} kernels: 2 ranks compute the unsplit block's y, dx and (sharded) gradients`, async () => {
      const p = fullParams();
      const x = tensor([B, T, C], 20);
      const dy = tensor([B, T, C], 21);
      const block = new Block(makeLayerSet(kind, HEADS, 1e-5));
      const ref = block.forward(p, x);
      const refBack = block.backward(p, ref.saved, dy);
      const shards = [0, 1].map((r) => shard(p, r));
      const layers = makeLayerSet(kind, HEADS / RANKS, 1e-5);
      const run = async (groups: TensorParallelGroup[]) =>
        Promise.all(
          groups.map(async (g, r) => {
            const tp = new TensorParallelBlock(layers, g);
            const f = await tp.forward(shards[r], x);
            const b = await tp.backward(shards[r], f.saved, dy);
            return { y: f.y, dx: b.dx, dParams: b.dParams };
          }),
        );
      const results = await run(fakeTensorParallelGroups(RANKS));
      for (const [r, res] of results.entries()) {
        expect(relError(res.y.dataSync(), ref.y.dataSync())).toBeLessThan(1e-5);
        expect(relError(res.dx.dataSync(), refBack.dx.dataSync())).toBeLessThan(1e-5);
        for (const [name, full] of Object.entries(refBack.dParams)) {
          const fullT = full instanceof Float32Array ? tf.tensor(full, shapeOf(p, name)) : full;
          const want = shardOfGrad(name, fullT, r);
          expect(relError(values(res.dParams[name]), want.dataSync()), `rank ${r} ${name}`).toBeLessThan(1e-5);
          tf.dispose(full instanceof Float32Array ? [fullT, want] : [want]);
        }
        if (kind === 'tf') for (const g of Object.values(res.dParams)) expect(g).toBeInstanceOf(tf.Tensor);
        tf.dispose([res.y, res.dx]);
        disposeGrads(res.dParams);
      }

      if (kind === 'tf') {
        // The only crossings: per rank two [B, T, C] all-reduces forward and two backward.
        const tensors = tf.memory().numTensors;
        const before = transferCounts();
        const again = await run(fakeTensorParallelGroups(RANKS));
        const after = transferCounts();
        for (const res of again) {
          tf.dispose([res.y, res.dx]);
          disposeGrads(res.dParams);
        }
        const reduced = RANKS * 4 * (4 * B * T * C);
        expect(after.deviceToHost - before.deviceToHost).toBe(reduced);
        expect(after.hostToDevice - before.hostToDevice).toBe(reduced);
        expect(tf.memory().numTensors).toBe(tensors);
      }
      tf.dispose([x, dy, ref.y, refBack.dx]);
      disposeGrads(refBack.dParams);
      for (const s of shards) tf.dispose([s.local.cAttn.weight, s.local.cAttn.bias, s.local.cProj.weight, s.local.cProj.bias, s.local.cFc.weight, s.local.cFc.bias, s.local.mlpProj.weight, s.local.mlpProj.bias]);
      tf.dispose(Object.values(p).flatMap((l: { weight: tf.Tensor; bias: tf.Tensor }) => [l.weight, l.bias]));
    });
  }
});

/** A block parameter's shape, by its Hugging Face local name. */
function shapeOf(p: BlockParams, name: string): number[] {
  const [layer, kind] = [name.slice(0, name.lastIndexOf('.')), name.slice(name.lastIndexOf('.') + 1)] as [string, 'weight' | 'bias'];
  const byName: Record<string, { weight: tf.Tensor; bias: tf.Tensor }> = {
    ln_1: p.ln1,
    'attn.c_attn': p.cAttn,
    'attn.c_proj': p.cProj,
    ln_2: p.ln2,
    'mlp.c_fc': p.cFc,
    'mlp.c_proj': p.mlpProj,
  };
  return byName[layer][kind].shape;
}
