import { initBackend } from '@trainer/model';
import { beforeAll, describe, expect, it } from 'vitest';
import { HostDevice } from '../device/host-device.js';
import type { Precision } from '../device/device.js';
import { TfDevice } from '../device/tf-device.js';
import type { MicroBatch } from '../interfaces.js';
import { BigramModel } from '../testing/bigram-model.js';
import { fakeGroups } from '../testing/fake-group.js';
import { TfBigramModel } from '../testing/tf-bigram-model.js';
import { Trainer } from '../trainer.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const V = 7;
const T = 5;

/** Rank `rank`'s micro-batches of `micro` sequences from step's global batch of 8, some targets masked. */
function microBatches(step: number, rank: number, world: number, micro: number): MicroBatch[] {
  const seqs = Array.from({ length: 8 }, (_, s) => {
    const tokens = Array.from({ length: T }, (_, t) => (step * 31 + s * 3 + t * t * 3) % V);
    return { tokens, targets: tokens.map((x, t) => ((s + t) % 3 === 0 ? -1 : (x * 2 + 1) % V)) };
  }).slice(rank * (8 / world), (rank + 1) * (8 / world));
  const out: MicroBatch[] = [];
  for (let i = 0; i < seqs.length; i += micro) {
    const part = seqs.slice(i, i + micro);
    out.push({ tokens: Int32Array.from(part.flatMap((p) => p.tokens)), targets: Int32Array.from(part.flatMap((p) => p.targets)), batch: part.length });
  }
  return out;
}

async function run(kind: 'host' | 'tf', stage: 0 | 1, precision: Precision, overlap: boolean, bucketBytes: number) {
  const trainers = fakeGroups(2).map((g) => (kind === 'host'
    ? new Trainer<unknown>(new BigramModel(V), new HostDevice() as never, g, { stage, precision, gradientSync: { overlap, bucketBytes }, schedule: { lr: 0.05, minLr: 0.005, warmupSteps: 2, decaySteps: 12 }, adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }, gradClip: 1 })
    : new Trainer<unknown>(new TfBigramModel(V), new TfDevice() as never, g, { stage, precision, gradientSync: { overlap, bucketBytes }, schedule: { lr: 0.05, minLr: 0.005, warmupSteps: 2, decaySteps: 12 }, adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }, gradClip: 1 })));
  await Promise.all(trainers.map((t) => t.init(async (_k, a, b) => Float32Array.from({ length: b - a }, (_, i) => Math.sin(a + i) * 0.1))));
  const losses: number[] = [];
  for (let step = 0; step < 6; step++) {
    const rs = await Promise.all(trainers.map((t, r) => t.step(step, microBatches(step, r, 2, 1 + (step % 2) * 3))));
    losses.push(rs[0].loss, rs[0].gradNorm);
  }
  const [params] = await Promise.all(trainers.map((t) => t.fullParams()));
  for (const t of trainers) t.dispose();
  return { losses, params: Array.from(params) };
}

describe('overlapped gradient reduction (stages 0-1)', () => {
  it('reduces while backward runs and gives the same sums, bit for bit: host and tf devices, fp32 and bf16, 1 or 4 passes, units split into buckets', async () => {
    for (const kind of ['host', 'tf'] as const) {
      for (const stage of [0, 1] as const) {
        for (const precision of ['fp32', 'bf16'] as const) {
          for (const bucketBytes of [25 * 2 ** 20, 64]) { // 64 bytes: the 49-value unit in 4 buckets
            const after = await run(kind, stage, precision, false, bucketBytes);
            const during = await run(kind, stage, precision, true, bucketBytes);
            const label = `${kind} stage ${stage} ${precision} bucket ${bucketBytes}`;
            expect(during.losses, label).toEqual(after.losses);
            expect(during.params, label).toEqual(after.params);
          }
        }
      }
    }
  });
});
