/**
 * The vocab-parallel embedding and head over a 2-rank in-process group: the tf variant computes
 * what the host variant does (and what the unsplit layers do), and its only host <-> device
 * traffic is what its all-reduces carry plus the int32 ids / targets (and the head backward's
 * loss-gradient scalar).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { installTransferMeter, transferCounts } from '../device/transfer-meter.js';
import type { GradValue } from '../layers/layer.js';
import { makeLayerSet, type KernelSet } from '../layers/layer-set.js';
import { fakeTensorParallelGroups } from '../testing/fake-tp-group.js';
import { randomArray, randomTokens, relError, useBackend } from '../testing/helpers.js';
import type { TensorParallelGroup } from './mappings.js';

const V = 13; // split unevenly: rows [0, 7) and [7, 13)
const C = 8;
const CONTEXT = 10;
const B = 2;
const T = 6;
const N = B * T;
const STARTS = [0, 7];

function tensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);
}

function values(g: GradValue | tf.Tensor): Float32Array {
  return g instanceof Float32Array ? g : (g.dataSync() as Float32Array).slice();
}

/** Two fake ranks whose all-reduces also count the bytes they carry (per rank: each rank's buffer). */
function countingGroups(): { groups: TensorParallelGroup[]; reducedBytes: () => number } {
  let bytes = 0;
  const groups = fakeTensorParallelGroups(2).map((g) => ({
    size: g.size,
    rank: g.rank,
    allReduce: (buf: Float32Array, opts?: { op?: 'sum' | 'max' }) => {
      bytes += buf.byteLength;
      return g.allReduce(buf, opts);
    },
  }));
  return { groups, reducedBytes: () => bytes };
}

describe.each(['wasm', 'cpu'] as const)('vocab-parallel embedding and head on %s', (backend) => {
  let wte: tf.Tensor;
  let wpe: tf.Tensor;
  let shards: tf.Tensor[];
  const tokens = Int32Array.from([3, 12, 7, 7, 0, 6, 12, 12, 5, 8, 1, 7]); // duplicates, both shards, both ends
  const targets = randomTokens(N, V, 3);
  targets[4] = -1; // masked

  beforeAll(async () => {
    await useBackend(backend);
    installTransferMeter();
    wte = tensor([V, C], 1, 0.7);
    wpe = tensor([CONTEXT, C], 2);
    shards = [tf.slice(wte, [0, 0], [7, C]), tf.slice(wte, [7, 0], [6, C])];
  });

  /** Embedding forward + backward on both ranks with one kernel set. */
  async function embedding(kind: KernelSet, groups: TensorParallelGroup[], dy: tf.Tensor) {
    const set = makeLayerSet(kind, 1, 1e-5);
    return Promise.all(
      groups.map(async (g, r) => {
        const layer = set.vocabParallelEmbedding(g, STARTS[r]);
        const p = { wte: shards[r], wpe };
        const { y, saved } = await layer.forward(p, tokens, B);
        const { dParams } = layer.backward(p, saved, dy);
        const out = { y: values(y), dwte: values(dParams.wte), dwpe: values(dParams.wpe!) };
        tf.dispose([y, ...[dParams.wte, dParams.wpe].filter((t): t is tf.Tensor => t instanceof tf.Tensor)]);
        return out;
      }),
    );
  }

  /** Head forward (loss awaited) + backward on both ranks with one kernel set. */
  async function head(kind: KernelSet, groups: TensorParallelGroup[], x: tf.Tensor, read = true) {
    const set = makeLayerSet(kind, 1, 1e-5);
    return Promise.all(
      groups.map(async (g, r) => {
        const layer = set.vocabParallelHead(g, STARTS[r]);
        const p = { wte: shards[r] };
        const fwd = await layer.forward(p, x, targets);
        const loss = await fwd.loss;
        const { dx, dParams } = await layer.backward(p, fwd.saved, 0.7);
        const out = { loss, count: fwd.count, dx: read ? values(dx) : null, dwte: read ? values(dParams.wte) : null };
        tf.dispose([dx, ...(dParams.wte instanceof tf.Tensor ? [dParams.wte] : [])]);
        return out;
      }),
    );
  }

  it('embedding: tf and host variants agree with each other and with the unsplit embedding', async () => {
    const dy = tensor([B, T, C], 4);
    const host = await embedding('host', fakeTensorParallelGroups(2), dy);
    const dev = await embedding('tf', fakeTensorParallelGroups(2), dy);
    const full = makeLayerSet('host', 1, 1e-5).embedding;
    const f = full.forward({ wte, wpe }, { tokens, batch: B });
    const fg = full.backward({ wte, wpe }, f.saved, dy).dParams;
    const fullY = f.y.dataSync();
    for (let r = 0; r < 2; r++) {
      expect(relError(dev[r].y, fullY)).toBeLessThan(1e-6);
      expect(relError(dev[r].y, host[r].y)).toBeLessThan(1e-6);
      expect(relError(dev[r].dwte, host[r].dwte)).toBeLessThan(1e-6);
      expect(relError(dev[r].dwpe, host[r].dwpe)).toBeLessThan(1e-6);
      expect(relError(dev[r].dwte, (fg.wte as Float32Array).subarray(STARTS[r] * C, STARTS[r] * C + dev[r].dwte.length))).toBeLessThan(1e-6);
    }
    tf.dispose([dy, f.y]);
  });

  it('head: tf and host variants agree on loss, dx and dwte, and with the unsplit head', async () => {
    const x = tensor([B, T, C], 5);
    const host = await head('host', fakeTensorParallelGroups(2), x);
    const dev = await head('tf', fakeTensorParallelGroups(2), x);
    const full = makeLayerSet('host', 1, 1e-5).head;
    const f = full.forward({ wte }, x, targets);
    const fullLoss = await f.loss;
    const fb = full.backward({ wte }, f.saved, 0.7);
    for (let r = 0; r < 2; r++) {
      expect(dev[r].count).toBe(N - 1);
      expect(Math.abs(dev[r].loss - fullLoss)).toBeLessThan(1e-5 * fullLoss);
      expect(Math.abs(dev[r].loss - host[r].loss)).toBeLessThan(1e-5 * fullLoss);
      expect(relError(dev[r].dx!, fb.dx.dataSync())).toBeLessThan(1e-5);
      expect(relError(dev[r].dx!, host[r].dx!)).toBeLessThan(1e-5);
      expect(relError(dev[r].dwte!, host[r].dwte!)).toBeLessThan(1e-5);
      const fw = fb.dParams.wte as Float32Array;
      expect(relError(dev[r].dwte!, fw.subarray(STARTS[r] * C, STARTS[r] * C + dev[r].dwte!.length))).toBeLessThan(1e-5);
    }
    tf.dispose([x, fb.dx]);
  });

  it('tf embedding: crossings are the all-reduced bytes plus the int32 ids; no tensor left behind', async () => {
    const dy = tensor([B, T, C], 6);
    const set = makeLayerSet('tf', 1, 1e-5);
    const run = async (groups: TensorParallelGroup[]) => {
      await Promise.all(
        groups.map(async (g, r) => {
          const layer = set.vocabParallelEmbedding(g, STARTS[r]);
          const p = { wte: shards[r], wpe };
          const { y, saved } = await layer.forward(p, tokens, B);
          const { dParams } = layer.backward(p, saved, dy);
          tf.dispose([y, dParams.wte as tf.Tensor, dParams.wpe as tf.Tensor]);
        }),
      );
    };
    await run(fakeTensorParallelGroups(2)); // warm-up: cached constants
    const { groups, reducedBytes } = countingGroups();
    const tensors = tf.memory().numTensors;
    const before = transferCounts();
    await run(groups);
    const after = transferCounts();
    expect(reducedBytes()).toBe(2 * 4 * N * C); // one [N, C] all-reduce per rank
    expect(after.deviceToHost - before.deviceToHost).toBe(reducedBytes());
    expect(after.hostToDevice - before.hostToDevice).toBe(reducedBytes() + 2 * 4 * N); // + each rank's ids
    expect(tf.memory().numTensors).toBe(tensors);
    dy.dispose();
  });

  it('tf head: crossings are the all-reduced bytes, the int32 targets and the loss-gradient scalar; no tensor left behind', async () => {
    const x = tensor([B, T, C], 7);
    await head('tf', fakeTensorParallelGroups(2), x, false); // warm-up: cached constants
    const { groups, reducedBytes } = countingGroups();
    const tensors = tf.memory().numTensors;
    const before = transferCounts();
    await head('tf', groups, x, false);
    const after = transferCounts();
    // Per rank: max [N], (S, target logit) [2N] forward; dx [N, C] backward.
    expect(reducedBytes()).toBe(2 * 4 * (N + 2 * N + N * C));
    expect(after.deviceToHost - before.deviceToHost).toBe(reducedBytes());
    // Uploaded per rank: the targets [N] int32, the reduced max [N], only the S half [N] of the
    // reduced sums (the target logits serve the loss, computed on the host), the scalar, dx [N, C].
    expect(after.hostToDevice - before.hostToDevice).toBe(2 * (4 * N + 4 * N + 4 * N + 4 + 4 * N * C));
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
  });
});
