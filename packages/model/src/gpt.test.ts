import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GPTConfig } from './config.js';
import { GPT } from './gpt.js';
import { initParams } from './init.js';
import { TINY, randomTokens, relError, useBackend } from './testing/helpers.js';

const SMALL: GPTConfig = { vocabSize: 512, contextLength: 32, layers: 2, heads: 2, dModel: 32, layerNormEps: 1e-5 };

/** The code of what `fn` throws or rejects with. */
async function codeOf(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

/** Plain Adam (no weight decay), enough to show the model learns. */
function adamStep(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, t: number, lr: number): void {
  const b1 = 0.9;
  const b2 = 0.999;
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= (lr * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + 1e-8);
  }
}

describe.each(['wasm', 'cpu'] as const)('GPT on %s', (backend) => {
  beforeAll(async () => useBackend(backend));

  it('starts near ln(vocab) and learns a repeated sequence (Adam drives the loss near zero)', async () => {
    const model = new GPT(SMALL);
    const params = initParams(SMALL, 1);
    model.setParams(params);
    const B = 4;
    const T = 16;
    const tokens = randomTokens(B * T, SMALL.vocabSize, 5);
    const targets = randomTokens(B * T, SMALL.vocabSize, 6); // not the inputs: tied weights favour them
    expect(Math.abs((await model.loss(tokens, targets, B)).loss - Math.log(SMALL.vocabSize))).toBeLessThan(0.05);
    // next-token targets of a sequence that repeats with period 8
    const seq = Int32Array.from({ length: B * (T + 1) }, (_, i) => [3, 14, 15, 92, 65, 35, 89, 79][i % 8]);
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        x[b * T + t] = seq[b * (T + 1) + t];
        y[b * T + t] = seq[b * (T + 1) + t + 1];
      }
    }
    const m = new Float32Array(params.length);
    const v = new Float32Array(params.length);
    const grads = new Float32Array(params.length);
    const first = (await model.loss(x, y, B)).loss;
    let last = first;
    for (let step = 1; step <= 150; step++) {
      grads.fill(0);
      last = (await model.forwardBackward(x, y, B, grads)).loss;
      adamStep(params, grads, m, v, step, 3e-3);
      model.setParams(params);
    }
    expect(first).toBeGreaterThan(5);
    expect(last).toBeLessThan(0.05);
    model.dispose();
  }, 120_000);

  it('ignores negative targets: count, loss and gradients do not depend on masked positions', async () => {
    const model = new GPT(TINY);
    model.setParams(initParams(TINY, 2));
    const B = 2;
    const T = 8;
    const tokens = randomTokens(B * T, TINY.vocabSize, 1);
    const targets = randomTokens(B * T, TINY.vocabSize, 2);
    const a = Int32Array.from(targets, (t, i) => (i % 3 === 0 ? -1 : t));
    const b = Int32Array.from(targets, (t, i) => (i % 3 === 0 ? -100 : t));
    const ga = new Float32Array(model.layout.totalSize);
    const gb = new Float32Array(model.layout.totalSize);
    const ra = (await model.forwardBackward(tokens, a, B, ga));
    const rb = (await model.forwardBackward(tokens, b, B, gb));
    expect(ra.count).toBe(B * T - Math.ceil((B * T) / 3));
    expect(rb).toEqual(ra);
    expect(gb).toEqual(ga);
    expect((await model.loss(tokens, a, B))).toEqual({ loss: expect.closeTo(ra.loss, 6), count: ra.count });
    // all masked: no loss, no gradient
    const g0 = new Float32Array(model.layout.totalSize);
    expect((await model.forwardBackward(tokens, new Int32Array(B * T).fill(-1), B, g0))).toEqual({ loss: 0, count: 0 });
    expect(g0.every((x) => x === 0)).toBe(true);
    model.dispose();
  });

  it('adds gradScale * gradient into grads (accumulation over micro-batches)', async () => {
    const model = new GPT(TINY);
    model.setParams(initParams(TINY, 3));
    const tokens = randomTokens(16, TINY.vocabSize, 4);
    const targets = randomTokens(16, TINY.vocabSize, 5);
    const once = new Float32Array(model.layout.totalSize);
    (await model.forwardBackward(tokens, targets, 2, once, 1));
    const halves = new Float32Array(model.layout.totalSize).fill(0.25);
    (await model.forwardBackward(tokens, targets, 2, halves, 0.5));
    (await model.forwardBackward(tokens, targets, 2, halves, 0.5));
    const expected = once.map((g) => g + 0.25);
    expect(relError(halves, expected)).toBeLessThan(1e-6);
    const scaled = new Float32Array(model.layout.totalSize);
    (await model.forwardBackward(tokens, targets, 2, scaled, -3));
    expect(relError(scaled, once.map((g) => -3 * g))).toBeLessThan(1e-6);
    model.dispose();
  });

  it('lastLogits are the logits the loss uses at the last position', async () => {
    const model = new GPT(TINY);
    model.setParams(initParams(TINY, 4));
    const T = 6;
    const tokens = randomTokens(2 * T, TINY.vocabSize, 6);
    const logits = (await model.lastLogits(tokens, 2));
    expect(logits).toHaveLength(2 * TINY.vocabSize);
    for (let b = 0; b < 2; b++) {
      const row = logits.subarray(b * TINY.vocabSize, (b + 1) * TINY.vocabSize);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, l) => s + Math.exp(l - max), 0));
      const target = 7;
      const targets = new Int32Array(2 * T).fill(-1);
      targets[b * T + T - 1] = target;
      expect((await model.loss(tokens, targets, 2)).loss).toBeCloseTo(lse - row[target], 4);
    }
    model.dispose();
  });

  it('generates deterministically for a seed, greedily at temperature 0, within topK', async () => {
    const model = new GPT(TINY);
    model.setParams(initParams(TINY, 5));
    const prompt = [1, 2, 3];
    const a = (await model.generate(prompt, { maxNewTokens: 12, seed: 9 }));
    expect((await model.generate(prompt, { maxNewTokens: 12, seed: 9 }))).toEqual(a);
    expect(a.slice(0, 3)).toEqual(prompt);
    expect(a).toHaveLength(15);
    const others = await Promise.all([10, 11, 12, 13].map(async (seed) => (await model.generate(prompt, { maxNewTokens: 12, seed })).join(',')));
    expect(others.some((o) => o !== a.join(','))).toBe(true);
    // greedy: each token is the argmax of the logits of the (cropped) prefix
    const greedy = (await model.generate(prompt, { maxNewTokens: 12, temperature: 0 })); // 15 > contextLength 8: crops
    for (let i = prompt.length; i < greedy.length; i++) {
      const ctx = Int32Array.from(greedy.slice(Math.max(0, i - TINY.contextLength), i));
      const logits = (await model.lastLogits(ctx, 1));
      expect(greedy[i]).toBe(logits.indexOf(Math.max(...logits)));
    }
    expect((await model.generate(prompt, { maxNewTokens: 12, topK: 1, seed: 3 }))).toEqual(greedy);
    expect((await model.generate(prompt, { maxNewTokens: 12, topK: 0, seed: 9 }))).toEqual(a); // 0 = no restriction
    // topK = 3: every sampled token is among the 3 largest logits of its prefix
    const sampled = (await model.generate(prompt, { maxNewTokens: 12, topK: 3, temperature: 2, seed: 4 }));
    for (let i = prompt.length; i < sampled.length; i++) {
      const ctx = Int32Array.from(sampled.slice(Math.max(0, i - TINY.contextLength), i));
      const logits = Array.from((await model.lastLogits(ctx, 1)));
      const third = [...logits].sort((x, y) => y - x)[2];
      expect(logits[sampled[i]]).toBeGreaterThanOrEqual(third);
    }
    // stopToken ends generation and is kept
    const stop = greedy[4];
    const stopped = (await model.generate(prompt, { maxNewTokens: 12, temperature: 0, stopToken: stop }));
    expect(stopped[stopped.length - 1]).toBe(stop);
    expect(stopped.length).toBeLessThanOrEqual(5);
    model.dispose();
  });

  it('rejects bad input with TrainerErrors', async () => {
    const model = new GPT(TINY);
    const grads = new Float32Array(model.layout.totalSize);
    const tok = randomTokens(16, TINY.vocabSize, 1);
    expect(await codeOf(() => model.loss(tok, tok, 2))).toBe('TRAINER_ERR_MODEL_STATE'); // before setParams
    expect(await codeOf(() => model.setParams(new Float32Array(5)))).toBe('TRAINER_ERR_MODEL_INPUT');
    model.setParams(initParams(TINY, 1));
    expect(await codeOf(() => model.forwardBackward(tok, tok, 3, grads))).toBe('TRAINER_ERR_MODEL_INPUT'); // 16 % 3
    expect(await codeOf(() => model.forwardBackward(tok, tok, 0, grads))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.forwardBackward(tok, tok, 1, grads))).toBe('TRAINER_ERR_MODEL_INPUT'); // T 16 > ctx 8
    expect(await codeOf(() => model.forwardBackward(tok, tok.subarray(1), 2, grads))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.forwardBackward(tok, tok, 2, new Float32Array(3)))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.forwardBackward(tok, tok, 2, grads, NaN))).toBe('TRAINER_ERR_MODEL_INPUT');
    const bad = tok.slice();
    bad[3] = TINY.vocabSize;
    expect(await codeOf(() => model.loss(bad, tok, 2))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.loss(tok, bad, 2))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.lastLogits(new Int32Array(0), 1))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.generate([], { maxNewTokens: 1 }))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.generate([99], { maxNewTokens: 1 }))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.generate([1], { maxNewTokens: 1, topK: -1 }))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.generate([1], { maxNewTokens: 1, topK: 1.5 }))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(await codeOf(() => model.generate([1], { maxNewTokens: 1, temperature: -1 }))).toBe('TRAINER_ERR_MODEL_INPUT');
    expect(grads.every((g) => g === 0)).toBe(true); // nothing was touched by rejected calls
    const tensors = tf.memory().numTensors;
    model.dispose();
    expect(tf.memory().numTensors).toBeLessThan(tensors);
    expect(await codeOf(() => model.loss(tok, tok, 2))).toBe('TRAINER_ERR_MODEL_STATE');
    expect(await codeOf(() => model.setParams(initParams(TINY, 1)))).toBe('TRAINER_ERR_MODEL_STATE');
  });

  it('refuses to run on another backend than the one it was built on', async () => {
    const model = new GPT(TINY);
    model.setParams(initParams(TINY, 1));
    await useBackend(backend === 'wasm' ? 'cpu' : 'wasm');
    try {
      expect(await codeOf(() => model.loss(randomTokens(8, TINY.vocabSize, 1), randomTokens(8, TINY.vocabSize, 2), 1))).toBe('TRAINER_ERR_MODEL_STATE');
    } finally {
      await useBackend(backend);
    }
    model.dispose();
  });

  it('round-trips its parameters', async () => {
    const model = new GPT(TINY);
    const flat = initParams(TINY, 6);
    model.setParams(flat);
    expect((await model.getParams())).toEqual(flat);
    model.dispose();
  });
});
