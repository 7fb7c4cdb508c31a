import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from '../config.js';
import { initParams } from '../init.js';
import { paramLayout } from '../layout.js';
import type { GradValue } from '../layers/layer.js';
import type { KernelSet } from '../layers/layer-set.js';
import type { UnitParams } from '../model-params.js';
import { GPTSegments, type UnitGradBuffer } from '../segments.js';
import { fakeTensorParallelGroups } from '../testing/fake-tp-group.js';
import { randomTokens, useBackend } from '../testing/helpers.js';
import { checkTensorParallel, globalFromLocals, localFromGlobal, tensorParallelLayout } from './tp-layout.js';

const CONFIG: GPTConfig = { vocabSize: 37, contextLength: 8, layers: 2, heads: 4, dModel: 16, layerNormEps: 1e-5 };

/** A unit's gradient accumulated in host memory (tensor gradients read, then disposed). */
function hostGradBuffer(size: number): UnitGradBuffer & { host: Float32Array } {
  const host = new Float32Array(size);
  return {
    host,
    add(offset: number, g: GradValue): void {
      const values = g instanceof Float32Array ? g : (g.dataSync() as Float32Array);
      for (let i = 0; i < values.length; i++) host[offset + i] += values[i];
      if (!(g instanceof Float32Array)) g.dispose();
    },
  };
}

/** One forward + backward of a micro-batch through every segment, as the engine runs it. */
async function run(model: GPTSegments, params: Float32Array, tokens: Int32Array, targets: Int32Array, batch: number, segments?: Int32Array) {
  const grads = new Map(model.units.map((u, i) => [i, hostGradBuffer(u.end - u.start)] as const));
  const acquire = (units: number[]) => new Map<number, UnitParams>(units.map((u) => [u, model.unitParams(u, params.subarray(model.units[u].start, model.units[u].end))]));
  const saved = [];
  let x: tf.Tensor | null = null;
  let loss = { loss: NaN, count: 0 };
  for (let s = 0; s < model.segments.length; s++) {
    const p = acquire(model.segments[s].forwardUnits);
    const r = await model.forward(s, p, x, { tokens, targets, batch, ...(segments ? { segments } : {}) }, true);
    p.forEach((u) => u.dispose());
    x?.dispose();
    x = r.y;
    saved.push(r.saved);
    if (r.loss) loss = { loss: await r.loss.loss, count: r.loss.count }; // the loss is a pending read (awaiting a number is a no-op)
  }
  let dy: tf.Tensor | null = null;
  for (let s = model.segments.length - 1; s >= 0; s--) {
    const p = acquire(model.segments[s].backwardUnits);
    const dx = await model.backward(s, p, saved[s], dy, 1, grads);
    p.forEach((u) => u.dispose());
    dy?.dispose();
    dy = dx;
  }
  const flat = new Float32Array(model.totalSize);
  model.units.forEach((u, i) => flat.set(grads.get(i)!.host, u.start));
  return { loss, grads: flat };
}

describe.each(['wasm', 'cpu'] as const)('tensor parallelism on %s', (backend) => {
  beforeAll(async () => useBackend(backend));

  it('shards and gathers back every parameter exactly (vocab rows, q/k/v head columns, MLP columns, rows)', () => {
    const global = initParams(CONFIG, 5);
    for (const T of [2, 4]) {
      const locals = Array.from({ length: T }, (_, t) => localFromGlobal(tensorParallelLayout(CONFIG, T, t), paramLayout(CONFIG), global));
      expect(Array.from(globalFromLocals(CONFIG, locals))).toEqual(Array.from(global));
      const layout = tensorParallelLayout(CONFIG, T, 1);
      const cAttn = layout.entries.find((e) => e.name === 'h.0.attn.c_attn.weight')!;
      expect(cAttn.shape).toEqual([16, 48 / T]);
      expect(layout.entries.find((e) => e.name === 'wte.weight')!.shape[0]).toBe(T === 2 ? 18 : 9); // 37 rows split unevenly
    }
  });

  // packed: rows of several sequences (segment ids: attention within each, positions restarting), as fine-tuning's --pack makes them
  for (const [T, kernels, packed] of [[2, 'host', false], [4, 'host', false], [2, 'tf', false], [4, 'tf', false], [2, 'host', true], [2, 'tf', true]] as [number, KernelSet, boolean][]) {
    it(`${T} ranks compute the single model's loss and, gathered, its gradients (${kernels} kernels${packed ? ', packed rows' : ''})`, async () => {
      const global = initParams(CONFIG, 5);
      const B = 2;
      const tokens = randomTokens(B * CONFIG.contextLength, CONFIG.vocabSize, 1);
      const targets = randomTokens(B * CONFIG.contextLength, CONFIG.vocabSize, 2);
      targets[5] = -1;
      const segments = packed ? Int32Array.from([0, 0, 0, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 1, 1, 1]) : undefined;
      const single = await run(new GPTSegments(CONFIG, { kernels }), global, tokens, targets, B, segments);
      const runRanks = () =>
        Promise.all(fakeTensorParallelGroups(T).map((g, t) => {
          const model = new GPTSegments(CONFIG, { tensorParallel: g, kernels });
          return run(model, localFromGlobal(tensorParallelLayout(CONFIG, T, t), paramLayout(CONFIG), global), tokens, targets, B, segments);
        }));
      await runRanks(); // creates the tf kernels' cached constants (this shard's vocabulary bounds)
      const before = tf.memory().numTensors;
      const results = await runRanks();
      expect(tf.memory().numTensors).toBe(before);
      for (const r of results) {
        expect(r.loss.count).toBe(single.loss.count);
        expect(Math.abs(r.loss.loss - single.loss.loss)).toBeLessThan(1e-5 * single.loss.loss);
      }
      // Replicated parameters' gradients agree on every rank; gathered, every gradient matches.
      const layouts = results.map((_, t) => tensorParallelLayout(CONFIG, T, t));
      layouts[0].entries.forEach((e, i) => {
        if (!e.replicated) return;
        const values = results.map((r, t) => Array.from(r.grads.subarray(layouts[t].entries[i].offset, layouts[t].entries[i].offset + e.size)));
        for (const v of values.slice(1)) expect(v, e.name).toEqual(values[0]);
      });
      const gathered = globalFromLocals(CONFIG, results.map((r) => r.grads));
      const scale = single.grads.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
      let maxDiff = 0;
      gathered.forEach((g, i) => (maxDiff = Math.max(maxDiff, Math.abs(g - single.grads[i]))));
      expect(maxDiff).toBeLessThan(1e-5 * scale);
    });
  }

  it('refuses head or hidden counts that do not divide, naming the sizes', () => {
    expect(() => checkTensorParallel(CONFIG, 3)).toThrow(/4 attention heads do not divide among 3 tensor-parallel ranks/);
    expect(() => checkTensorParallel(CONFIG, 8)).toThrow(/4 attention heads/);
  });
});
