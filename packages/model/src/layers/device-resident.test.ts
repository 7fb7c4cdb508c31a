/**
 * The tf kernel set keeps the step on the device: after a warm-up call (which creates the cached
 * constants), a block's forward + backward, the embedding's, the head's and a LayerNorm's move
 * exactly the bytes the design allows between host and device (counted by the transfer meter),
 * and leave no tensor behind. Run on wasm and cpu, where "device" is the backend's memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { installTransferMeter, transferCounts, type TransferCounts } from '../device/transfer-meter.js';
import { randomArray, randomTokens, relError, useBackend } from '../testing/helpers.js';
import { Block, type BlockParams } from './block.js';
import type { GradValue } from './layer.js';
import { makeLayerSet } from './layer-set.js';

const B = 2;
const T = 8;
const C = 16;
const HEADS = 2;
const V = 24;
const CONTEXT = 12; // > T: dwpe is padded
const N = B * T;

function tensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);
}

function blockParams(): BlockParams {
  const ln = (seed: number) => ({ weight: tf.tidy(() => tf.add(tensor([C], seed, 0.1), 1)), bias: tensor([C], seed + 1, 0.1) });
  const lin = (i: number, o: number, seed: number) => ({ weight: tensor([i, o], seed, 0.2), bias: tensor([o], seed + 1, 0.1) });
  return { ln1: ln(1), cAttn: lin(C, 3 * C, 3), cProj: lin(C, C, 5), ln2: ln(7), cFc: lin(C, 4 * C, 9), mlpProj: lin(4 * C, C, 11) };
}

function paramTensors(p: BlockParams): tf.Tensor[] {
  return Object.values(p).flatMap((l: { weight: tf.Tensor; bias: tf.Tensor }) => [l.weight, l.bias]);
}

/** Tensor gradients (the tf kernels' kind), asserted and disposed. */
function disposeGrads(grads: Record<string, GradValue>): void {
  for (const [name, g] of Object.entries(grads)) {
    expect(g, name).toBeInstanceOf(tf.Tensor);
    (g as tf.Tensor).dispose();
  }
}

/** Bytes each way that `fn` moved, and the live tensors it left (it must dispose what it made). */
async function measure(fn: () => Promise<void> | void): Promise<Omit<TransferCounts, 'transferMs'> & { leftTensors: number }> {
  const tensors = tf.memory().numTensors;
  const a = transferCounts();
  await fn();
  const b = transferCounts();
  return { hostToDevice: b.hostToDevice - a.hostToDevice, deviceToHost: b.deviceToHost - a.deviceToHost, syncReads: b.syncReads - a.syncReads, leftTensors: tf.memory().numTensors - tensors };
}

describe.each(['wasm', 'cpu'] as const)('tf kernels stay on the device (%s)', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    installTransferMeter();
  });

  it('a block forward + backward crosses nothing, and keeps no tensor', async () => {
    const set = makeLayerSet('tf', HEADS, 1e-5);
    const block = new Block(set);
    const p = blockParams();
    const x = tensor([B, T, C], 20);
    const dy = tensor([B, T, C], 21);
    const step = () => {
      const { y, saved } = block.forward(p, x);
      const { dx, dParams } = block.backward(p, saved, dy);
      expect(Object.keys(dParams)).toHaveLength(12);
      disposeGrads(dParams);
      tf.dispose([y, dx]);
    };
    const warmUp = await measure(step); // creates the cached constants and the causal mask (their only upload)
    expect(warmUp.hostToDevice).toBeGreaterThan(0);
    expect(warmUp.deviceToHost).toBe(0);
    for (let i = 0; i < 2; i++) expect(await measure(step)).toEqual({ hostToDevice: 0, deviceToHost: 0, syncReads: 0, leftTensors: 0 });
    tf.dispose([x, dy, ...paramTensors(p)]);
  });

  it('a LayerNorm forward + backward crosses nothing', async () => {
    const set = makeLayerSet('tf', HEADS, 1e-5);
    const p = { weight: tensor([C], 30), bias: tensor([C], 31) };
    const x = tensor([B, T, C], 32);
    const dy = tensor([B, T, C], 33);
    const step = () => {
      const { y, saved } = set.layerNorm.forward(p, x);
      const { dx, dParams } = set.layerNorm.backward(p, saved, dy);
      disposeGrads(dParams);
      tf.dispose([y, dx]);
    };
    await measure(step);
    expect(await measure(step)).toEqual({ hostToDevice: 0, deviceToHost: 0, syncReads: 0, leftTensors: 0 });
    tf.dispose([x, dy, p.weight, p.bias]);
  });

  it('the embedding uploads its int32 ids once and nothing else', async () => {
    const set = makeLayerSet('tf', HEADS, 1e-5);
    const p = { wte: tensor([V, C], 40), wpe: tensor([CONTEXT, C], 41) };
    const tokens = randomTokens(N, V, 42);
    const dy = tensor([B, T, C], 43);
    const step = () => {
      const { y, saved } = set.embedding.forward(p, { tokens, batch: B });
      const { dx, dParams } = set.embedding.backward(p, saved, dy);
      expect(dx).toBeNull();
      expect((dParams.wte as tf.Tensor).shape).toEqual([V, C]);
      expect((dParams.wpe as tf.Tensor).shape).toEqual([CONTEXT, C]);
      disposeGrads(dParams);
      y.dispose();
    };
    await measure(step);
    expect(await measure(step)).toEqual({ hostToDevice: 4 * N, deviceToHost: 0, syncReads: 0, leftTensors: 0 });
    tf.dispose([dy, p.wte, p.wpe]);
  });

  it('the head uploads its int32 targets and the loss-gradient scalar, and reads back only the 4-byte loss', async () => {
    const set = makeLayerSet('tf', HEADS, 1e-5);
    const p = { wte: tensor([V, C], 50, 0.5) };
    const x = tensor([B, T, C], 51);
    const targets = randomTokens(N, V, 52);
    targets[3] = -1; // masked
    let loss = NaN;
    const step = async () => {
      const fwd = set.head.forward(p, x, targets);
      loss = await fwd.loss;
      expect(fwd.count).toBe(N - 1);
      const { dx, dParams } = set.head.backward(p, fwd.saved, 0.5);
      expect((dParams.wte as tf.Tensor).shape).toEqual([V, C]);
      disposeGrads(dParams);
      dx.dispose();
    };
    await measure(step);
    expect(await measure(step)).toEqual({ hostToDevice: 4 * N + 4, deviceToHost: 4, syncReads: 0, leftTensors: 0 });
    expect(Number.isFinite(loss) && loss > 0).toBe(true);
    tf.dispose([x, p.wte]);
  });

  it('duplicate token ids sum in the embedding gradient (tf.scatterND) exactly as in the host scatter-add', () => {
    const tf_ = makeLayerSet('tf', HEADS, 1e-5).embedding;
    const host = makeLayerSet('host', HEADS, 1e-5).embedding;
    const p = { wte: tensor([V, C], 60), wpe: tensor([CONTEXT, C], 61) };
    // Every id repeated: 3 appears 5 times, 0 twice (at both ends), and row 7 never.
    const tokens = Int32Array.from([3, 0, 3, 5, 3, 3, 9, 3, 1, 1, 2, 23, 23, 4, 6, 0]);
    const dy = tensor([B, T, C], 62);
    const a = tf_.backward(p, tf_.forward(p, { tokens, batch: B }).saved, dy);
    const b = host.backward(p, host.forward(p, { tokens, batch: B }).saved, dy);
    const dwte = (a.dParams.wte as tf.Tensor).dataSync();
    expect(relError(dwte, b.dParams.wte as Float32Array)).toBeLessThan(1e-6);
    expect(relError((a.dParams.wpe as tf.Tensor).dataSync(), b.dParams.wpe as Float32Array)).toBeLessThan(1e-6);
    // Row 3 is the sum of dy at its five positions; row 7 is zero.
    const g = dy.dataSync();
    for (let c = 0; c < C; c++) {
      let s = 0;
      tokens.forEach((t, n) => (s += t === 3 ? g[n * C + c] : 0));
      expect(dwte[3 * C + c]).toBeCloseTo(s, 5);
      expect(dwte[7 * C + c]).toBe(0);
    }
    disposeGrads(a.dParams);
    tf.dispose([dy, p.wte, p.wpe]);
  });
});
