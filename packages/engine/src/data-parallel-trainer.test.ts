import { describe, expect, it } from 'vitest';
import { DataParallelTrainer, type TrainerOptions } from './data-parallel-trainer.js';
import type { MicroBatch } from './interfaces.js';
import { BigramModel } from './testing/bigram-model.js';
import { fakeGroups } from './testing/fake-group.js';

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
  const all = globalBatch(step, global, masked);
  const perRank = global / world;
  const mine = all.slice(rank * perRank, (rank + 1) * perRank);
  const out: MicroBatch[] = [];
  for (let i = 0; i < mine.length; i += micro) {
    const part = mine.slice(i, i + micro);
    out.push({ tokens: Int32Array.from(part.flatMap((p) => p.tokens)), targets: Int32Array.from(part.flatMap((p) => p.targets)), batch: part.length });
  }
  return out;
}

async function train(world: number, micro: number, masked: boolean, steps = 12, options = OPTIONS) {
  const init = Float32Array.from({ length: V * V + V }, (_, i) => Math.sin(i) * 0.1);
  const trainers = fakeGroups(world).map((g) => new DataParallelTrainer(new BigramModel(V), g, init, options));
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const results = await Promise.all(trainers.map((t, r) => t.step(step, microBatches(step, 8, r, world, micro, masked))));
    for (const r of results) expect(r.loss).toBe(results[0].loss);
    losses.push(results[0].loss);
  }
  for (const t of trainers) expect(Array.from(t.params)).toEqual(Array.from(trainers[0].params));
  return { losses, params: trainers[0].params };
}

describe('DataParallelTrainer', () => {
  it('learns: the loss falls on a learnable bigram task', async () => {
    const schedule = { lr: 0.1, minLr: 0.01, warmupSteps: 2, decaySteps: 60 };
    const { losses } = await train(1, 8, false, 60, { ...OPTIONS, schedule });
    expect(losses[0]).toBeCloseTo(Math.log(V), 1);
    expect(losses[59]).toBeLessThan(losses[0] * 0.5);
  });

  for (const masked of [false, true]) {
    it(`gives the same trajectory on 1, 2 and 4 ranks and any micro-batch size${masked ? ' (masked targets)' : ''}`, async () => {
      const reference = await train(1, 8, masked);
      for (const [world, micro] of [[1, 2], [2, 4], [2, 1], [4, 2], [4, 1]]) {
        const run = await train(world, micro, masked);
        run.losses.forEach((l, i) => expect(Math.abs(l - reference.losses[i])).toBeLessThan(1e-5 * Math.abs(reference.losses[i])));
        let maxDiff = 0;
        run.params.forEach((p, i) => (maxDiff = Math.max(maxDiff, Math.abs(p - reference.params[i]))));
        expect(maxDiff).toBeLessThan(1e-5);
      }
    });
  }

  it('refuses a global batch in which every target is masked', async () => {
    const [g] = fakeGroups(1);
    const t = new DataParallelTrainer(new BigramModel(V), g, new Float32Array(V * V + V), OPTIONS);
    const mb = { tokens: new Int32Array(T), targets: new Int32Array(T).fill(-1), batch: 1 };
    await expect(t.step(0, [mb])).rejects.toMatchObject({ code: 'TRAINER_ERR_EMPTY_BATCH' });
  });
});
