import { encodeBf16, encodeFp16 } from '@trainer/comm';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@trainer/model';
import { beforeAll, describe, expect, it } from 'vitest';
import { HostDevice } from './device/host-device.js';
import { TfDevice } from './device/tf-device.js';
import type { CollectiveGroup, MicroBatch } from './interfaces.js';
import { BigramModel } from './testing/bigram-model.js';
import { fakeGroups } from './testing/fake-group.js';
import { TfBigramModel } from './testing/tf-bigram-model.js';
import type { TrainerOptions } from './trainer-options.js';
import { Trainer, type TrainerConfig } from './trainer.js';
import type { ZeroStage } from './zero/stage-plan.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const V = 7;
const T = 5;
const OPTIONS: TrainerOptions = {
  schedule: { lr: 0.05, minLr: 0.005, warmupSteps: 2, decaySteps: 12 },
  adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 },
  gradClip: 1.0,
};

/** A deterministic global batch of `global` sequences for a step, with some targets masked. */
function globalBatch(step: number, global: number, masked: boolean): { tokens: number[]; targets: number[] }[] {
  return Array.from({ length: global }, (_, s) => {
    const tokens = Array.from({ length: T }, (_, t) => (step * 31 + s * 7 + t * t * 3) % V);
    const targets = tokens.map((_, t) => (masked && (s + t) % 3 === 0 ? -1 : (tokens[t] * 2 + 1) % V));
    return { tokens, targets };
  });
}

function microBatches(step: number, global: number, rank: number, world: number, micro: number, masked: boolean): MicroBatch[] {
  const mine = globalBatch(step, global, masked).slice(rank * (global / world), (rank + 1) * (global / world));
  const out: MicroBatch[] = [];
  for (let i = 0; i < mine.length; i += micro) {
    const part = mine.slice(i, i + micro);
    out.push({ tokens: Int32Array.from(part.flatMap((p) => p.tokens)), targets: Int32Array.from(part.flatMap((p) => p.targets)), batch: part.length });
  }
  return out;
}

const INIT = Float32Array.from({ length: V * V + V }, (_, i) => Math.sin(i) * 0.1);

type DeviceKind = 'host' | 'tf';

/** A trainer on one rank: the host model on a HostDevice, or its TF.js twin on a TfDevice. */
async function makeTrainer(device: DeviceKind, g: CollectiveGroup, options: TrainerConfig, init: Float32Array | null = INIT): Promise<Trainer<unknown>> {
  const t = device === 'host'
    ? new Trainer<unknown>(new BigramModel(V), new HostDevice() as never, g, options)
    : new Trainer<unknown>(new TfBigramModel(V), new TfDevice() as never, g, options);
  if (init) await t.init(async (_k, a, b) => init.slice(a, b));
  return t;
}

async function train(stage: ZeroStage, world: number, micro: number, masked: boolean, steps = 12, options: Omit<TrainerConfig, 'stage'> = OPTIONS, device: DeviceKind = 'host') {
  const trainers = await Promise.all(fakeGroups(world).map((g) => makeTrainer(device, g, { ...options, stage })));
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const results = await Promise.all(trainers.map((t, r) => t.step(step, microBatches(step, 8, r, world, micro, masked))));
    for (const r of results) expect(r.loss).toBe(results[0].loss);
    losses.push(results[0].loss);
  }
  const params = await Promise.all(trainers.map((t) => t.fullParams()));
  for (const p of params) expect(Array.from(p)).toEqual(Array.from(params[0]));
  const val = await Promise.all(trainers.map((t, r) => t.evaluate(r === 0 ? microBatches(99, 8, 0, 1, 3, masked) : [])));
  return { losses, params: params[0], val: val[0], trainers };
}

describe('Trainer', () => {
  it('learns: the loss falls on a learnable bigram task', async () => {
    const schedule = { lr: 0.1, minLr: 0.01, warmupSteps: 2, decaySteps: 60 };
    const { losses } = await train(0, 1, 8, false, 60, { ...OPTIONS, schedule });
    expect(losses[0]).toBeCloseTo(Math.log(V), 1);
    expect(losses[59]).toBeLessThan(losses[0] * 0.5);
  });

  for (const masked of [false, true]) {
    it(`every stage, on 1-4 ranks and any micro-batch size, follows the single-rank trajectory${masked ? ' (masked targets)' : ''}`, async () => {
      const reference = await train(0, 1, 8, masked);
      for (const stage of [0, 1, 2, 3] as const) {
        for (const [world, micro] of [[1, 2], [2, 4], [2, 1], [3, 1], [4, 2], [4, 1]]) {
          if (8 % world !== 0 && world !== 3) continue;
          const w = world === 3 ? 4 : world; // keep the global batch divisible
          const run = await train(stage, w, micro, masked);
          run.losses.forEach((l, i) => expect(Math.abs(l - reference.losses[i])).toBeLessThan(1e-5 * Math.abs(reference.losses[i])));
          let maxDiff = 0;
          run.params.forEach((p, i) => (maxDiff = Math.max(maxDiff, Math.abs(p - reference.params[i]))));
          expect(maxDiff, `stage ${stage}, world ${w}, micro ${micro}`).toBeLessThan(1e-5);
          expect(Math.abs(run.val.loss - reference.val.loss)).toBeLessThan(1e-5);
        }
      }
    });
  }

  it('on a TfDevice (state as backend tensors), every stage on 1-4 ranks follows the single-rank trajectory, and the host device\'s', async () => {
    const host = await train(0, 1, 8, true);
    const reference = await train(0, 1, 8, true, 12, OPTIONS, 'tf');
    // fp32 kernels against the host model's float64 loss and update arithmetic.
    reference.losses.forEach((l, i) => expect(Math.abs(l - host.losses[i])).toBeLessThan(1e-4 * host.losses[i]));
    for (const stage of [0, 1, 2, 3] as const) {
      for (const [world, micro] of [[2, 4], [2, 1], [4, 1]]) {
        const run = await train(stage, world, micro, true, 12, OPTIONS, 'tf');
        run.losses.forEach((l, i) => expect(Math.abs(l - reference.losses[i]), `stage ${stage} world ${world} step ${i}`).toBeLessThan(1e-5 * reference.losses[i]));
        let maxDiff = 0;
        run.params.forEach((p, i) => (maxDiff = Math.max(maxDiff, Math.abs(p - reference.params[i]))));
        expect(maxDiff, `stage ${stage}, world ${world}, micro ${micro}`).toBeLessThan(1e-5);
      }
    }
  });

  it('holds the model state each stage promises: optimizer, then gradients, then parameters partitioned', async () => {
    const world = 4;
    const runs = await Promise.all(([0, 1, 2, 3] as const).map((s) => train(s, world, 2, false, 2)));
    const bytes = runs.map((r) => r.trainers[1].modelStateBytes());
    const own = runs[1].trainers[1].partition.shardSize * 4;
    const P = (V * V + V) * 4;
    expect(bytes[0]).toMatchObject({ params: P, master: 0, grads: P, optimizer: 2 * P });
    // Stages 1-3 keep the master and moments of their own pieces only.
    expect(bytes[1]).toMatchObject({ params: own, grads: P, optimizer: 2 * own });
    expect(bytes[2]).toMatchObject({ params: own, optimizer: 2 * own });
    // Own pieces plus the unit buckets awaiting their reduce-scatter: at least the largest
    // unit (W), at most both units of this two-unit toy.
    const W = V * V * 4;
    for (const b of [bytes[2], bytes[3]]) {
      expect(b.grads).toBeGreaterThanOrEqual(own + W);
      expect(b.grads).toBeLessThanOrEqual(own + P);
    }
    expect(bytes[3]).toMatchObject({ params: own, optimizer: 2 * own });
  });

  it('activation checkpointing (recompute in backward) changes nothing, bit for bit, at every stage', async () => {
    for (const stage of [0, 3] as const) {
      const plain = await train(stage, 2, 2, true);
      const recomputed = await train(stage, 2, 2, true, 12, { ...OPTIONS, checkpointActivations: true });
      expect(recomputed.losses).toEqual(plain.losses);
      expect(Array.from(recomputed.params)).toEqual(Array.from(plain.params));
    }
  });

  it('refuses a stage that does not exist', () => {
    const [g] = fakeGroups(1);
    expect(() => new Trainer(new BigramModel(V), new HostDevice(), g, { ...OPTIONS, stage: 4 as ZeroStage })).toThrow(/ZeRO stage 4/);
  });
});

describe('Trainer state export and import', () => {
  it('resumes exactly, also into another stage and world size (resharding by flat ranges)', async () => {
    const steps = 6;
    const full = await train(2, 4, 2, true, steps);
    // Train 3 steps under stage 3 on 2 ranks, export, and continue under other layouts.
    const first = await Promise.all(fakeGroups(2).map((g) => makeTrainer('host', g, { ...OPTIONS, stage: 3 })));
    for (let step = 0; step < 3; step++) await Promise.all(first.map((t, r) => t.step(step, microBatches(step, 8, r, 2, 2, true))));
    const store = { params: new Float32Array(V * V + V), m: new Float32Array(V * V + V), v: new Float32Array(V * V + V) };
    let optimizerStep = 0;
    for (const t of first) {
      const e = await t.exportPieces();
      optimizerStep = e.optimizerStep;
      for (const p of e.pieces) for (const k of ['params', 'm', 'v'] as const) store[k].set(p[k], p.flatStart);
    }
    const read = async (k: 'params' | 'm' | 'v', a: number, b: number) => store[k].slice(a, b);
    for (const [stage, world] of [[3, 2], [0, 1], [1, 4], [2, 4]] as const) {
      const resumed = await Promise.all(fakeGroups(world).map((g) => makeTrainer('host', g, { ...OPTIONS, stage }, null)));
      await Promise.all(resumed.map((t) => t.importState(optimizerStep, read)));
      const losses: number[] = [];
      for (let step = 3; step < steps; step++) {
        const results = await Promise.all(resumed.map((t, r) => t.step(step, microBatches(step, 8, r, world, 1, true))));
        losses.push(results[0].loss);
      }
      losses.forEach((l, i) => expect(Math.abs(l - full.losses[3 + i]), `stage ${stage} world ${world}`).toBeLessThan(1e-5 * l));
      const [params] = await Promise.all(resumed.map((t) => t.fullParams())); // a collective under stage 3
      params.forEach((p, i) => expect(Math.abs(p - full.params[i])).toBeLessThan(1e-5));
    }
  });
});

describe('Trainer in mixed precision', () => {
  it('bf16 and fp16 hold parameters and gradients in 16 bits, keep an fp32 master, and track fp32', async () => {
    const schedule = { lr: 0.1, minLr: 0.01, warmupSteps: 2, decaySteps: 40 };
    const fp32 = await train(0, 1, 8, false, 40, { ...OPTIONS, schedule });
    for (const precision of ['bf16', 'fp16'] as const) {
      for (const [stage, world] of [[0, 1], [1, 2], [2, 4], [3, 4]] as const) {
        const run = await train(stage, world, 2, false, 40, { ...OPTIONS, schedule, precision, lossScaler: { initialScale: 256 } });
        // The same learning, up to 16-bit rounding of weights and gradients.
        expect(Math.abs(run.losses[39] - fp32.losses[39]), `${precision} stage ${stage}`).toBeLessThan(0.02 * fp32.losses[39]);
        expect(run.losses[39]).toBeLessThan(run.losses[0] * 0.6);
        const bytes = run.trainers[0].modelStateBytes();
        const own = run.trainers[0].partition.shardSize;
        const P = V * V + V;
        expect(bytes.params, `${precision} stage ${stage}`).toBe(0); // the working copy is the compute copy, rounded from the master
        expect(bytes.master).toBe(4 * (stage === 0 ? P : own)); // fp32 master, partitioned from stage 1
        // A checkpoint's 16-bit parameters: the working copy's codes, exactly the master's rounding, on every rank.
        const covered = new Uint8Array(P);
        for (const t of run.trainers) {
          const e = await t.exportPieces();
          expect(e.precision).toBe(precision);
          for (const p of e.pieces) {
            const rounded = new Uint16Array(p.params.length);
            (precision === 'bf16' ? encodeBf16 : encodeFp16)(p.params, rounded);
            expect(Array.from(p.params16!), `${precision} stage ${stage}`).toEqual(Array.from(rounded));
            covered.fill(1, p.flatStart, p.flatEnd);
          }
        }
        expect(covered.every((c) => c === 1)).toBe(true);
      }
    }
    expect((await fp32.trainers[0].exportPieces()).pieces.every((p) => p.params16 === undefined)).toBe(true);
  });

  it('on a TfDevice too: bf16 and fp16 track fp32 on every stage, with no tensor left behind', async () => {
    const schedule = { lr: 0.1, minLr: 0.01, warmupSteps: 2, decaySteps: 40 };
    const fp32 = await train(0, 1, 8, false, 40, { ...OPTIONS, schedule }, 'tf');
    for (const precision of ['bf16', 'fp16'] as const) {
      for (const [stage, world] of [[0, 1], [1, 2], [2, 4], [3, 4]] as const) {
        const options = { ...OPTIONS, schedule, precision, lossScaler: { initialScale: 256 } };
        // A first run creates the kernels' cached constants (kept for the process).
        for (const t of (await train(stage, world, 2, false, 2, options, 'tf')).trainers) t.dispose();
        const before = tf.memory().numTensors;
        const run = await train(stage, world, 2, false, 40, options, 'tf');
        expect(Math.abs(run.losses[39] - fp32.losses[39]), `${precision} stage ${stage}`).toBeLessThan(0.02 * fp32.losses[39]);
        const bytes = run.trainers[0].modelStateBytes();
        expect(bytes.master).toBe(4 * (stage === 0 ? V * V + V : run.trainers[0].partition.shardSize));
        for (const t of run.trainers) t.dispose();
        expect(tf.memory().numTensors, `${precision} stage ${stage}`).toBe(before);
      }
    }
  });

  it('fp16 skips a step whose gradients overflow and halves the loss scale', async () => {
    const [g] = fakeGroups(1);
    const t = await makeTrainer('host', g, { ...OPTIONS, stage: 0, precision: 'fp16', lossScaler: { initialScale: 2 ** 24 } });
    const mb = microBatches(0, 8, 0, 1, 8, false);
    const before = await t.fullParams();
    const r = await t.step(0, mb); // 2^24 x gradients of order 0.1 overflow fp16's 65504
    expect(r).toMatchObject({ skipped: true, lossScale: 2 ** 24 });
    expect(Array.from(await t.fullParams())).toEqual(Array.from(before));
    let last = r;
    for (let step = 1; last.skipped && step < 20; step++) last = await t.step(step, mb);
    expect(last.skipped).toBe(false);
    expect(last.lossScale).toBeLessThan(2 ** 24);
    expect(t.lossScalerState()!.scale).toBe(last.lossScale);
  });
});
