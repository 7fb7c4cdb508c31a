import { initBackend } from '@trainer/model';
import { beforeAll, describe, expect, it } from 'vitest';
import { HostDevice } from '../device/host-device.js';
import { TfDevice } from '../device/tf-device.js';
import type { CollectiveGroup, MicroBatch } from '../interfaces.js';
import { BigramModel } from '../testing/bigram-model.js';
import { fakeGroups } from '../testing/fake-group.js';
import { TfBigramModel } from '../testing/tf-bigram-model.js';
import { Trainer, type TrainerConfig } from '../trainer.js';
import type { DiLoCoOptions } from './diloco.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const V = 7;
const T = 5;
const INIT = Float32Array.from({ length: V * V + V }, (_, i) => Math.sin(i) * 0.1);
const CONFIG: Omit<TrainerConfig, 'stage'> = {
  schedule: { lr: 0.05, minLr: 0.005, warmupSteps: 2, decaySteps: 12 },
  adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 },
  gradClip: 1.0,
};

/** Sequences `rank` of `world` get of step's global batch of 8 (a learnable bigram task, different per rank). */
function batch(step: number, rank: number, world: number): MicroBatch[] {
  const seqs = Array.from({ length: 8 }, (_, s) => {
    const tokens = Array.from({ length: T }, (_, t) => (step * 31 + s * 3 + t * t * 3) % V);
    return { tokens, targets: tokens.map((x) => (x * 2 + 1) % V) };
  }).slice(rank * (8 / world), (rank + 1) * (8 / world));
  return [{ tokens: Int32Array.from(seqs.flatMap((p) => p.tokens)), targets: Int32Array.from(seqs.flatMap((p) => p.targets)), batch: seqs.length }];
}

async function trainer(kind: 'host' | 'tf', inner: CollectiveGroup, stage: 0 | 1 | 2 | 3, outer?: DiLoCoOptions): Promise<Trainer<unknown>> {
  const t = kind === 'host'
    ? new Trainer<unknown>(new BigramModel(V), new HostDevice() as never, inner, { ...CONFIG, stage, outer })
    : new Trainer<unknown>(new TfBigramModel(V), new TfDevice() as never, inner, { ...CONFIG, stage, outer });
  await t.init(async (_k, a, b) => INIT.slice(a, b));
  return t;
}

const f = Math.fround;

describe('DiLoCo (outer Nesterov over replicas)', () => {
  for (const kind of ['host', 'tf'] as const) {
    it(`${kind} device: each sync averages the replicas' pseudo-gradients and takes PyTorch's Nesterov SGD step from the anchor`, async () => {
      const H = 3;
      const outerGroups = fakeGroups(2);
      const opts = (g: CollectiveGroup): DiLoCoOptions => ({ group: g, every: 1000, lr: 0.7, momentum: 0.9, codec: 'fp32' });
      // Two replicas of one rank each; syncs called by hand (every: 1000 never comes) to read the parameters around them.
      const replicas = await Promise.all([0, 1].map((r) => trainer(kind, fakeGroups(1)[0], 0, opts(outerGroups[r]))));
      let anchor = INIT.slice();
      const momentum = new Float32Array(INIT.length);
      for (let sync = 0; sync < 3; sync++) {
        for (let i = 0; i < H; i++) {
          const step = sync * H + i;
          await Promise.all(replicas.map((t, r) => t.step(step, batch(step, r, 2))));
        }
        const local = await Promise.all(replicas.map((t) => t.fullParams()));
        expect(local[0]).not.toEqual(local[1]); // apart: different data
        await Promise.all(replicas.map((t) => t.syncReplicas()));
        const after = await Promise.all(replicas.map((t) => t.fullParams()));
        expect(Array.from(after[1])).toEqual(Array.from(after[0]));
        // The reference, in fp32 operation by operation: delta = mean(anchor - theta_r).
        const next = new Float32Array(anchor.length);
        for (let i = 0; i < anchor.length; i++) {
          const sum = f(f(anchor[i] - local[0][i]) + f(anchor[i] - local[1][i]));
          const g = f(sum * f(0.5));
          momentum[i] = f(f(f(0.9) * momentum[i]) + g);
          next[i] = f(anchor[i] - f(f(0.7) * f(g + f(f(0.9) * momentum[i]))));
        }
        let worst = 0;
        for (let i = 0; i < next.length; i++) worst = Math.max(worst, Math.abs(after[0][i] - next[i]));
        expect(worst, `sync ${sync}`).toBeLessThan(1e-7);
        anchor = next;
      }
      for (const t of replicas) t.dispose();
    });
  }

  for (const kind of ['host', 'tf'] as const) {
    it(`${kind} device, overlapped: a sync starts the average and the replicas train on; D steps later it lands, each replica's progress since the sync replanted on the new anchor`, async () => {
      const H = 3;
      const D = 2;
      const outerGroups = fakeGroups(2);
      const opts = (g: CollectiveGroup): DiLoCoOptions => ({ group: g, every: H, lr: 0.7, momentum: 0.9, codec: 'fp32', overlap: D });
      const replicas = await Promise.all([0, 1].map((r) => trainer(kind, fakeGroups(1)[0], 0, opts(outerGroups[r]))));
      // The reference, in fp32 operation by operation.
      const anchor = INIT.slice();
      const momentum = new Float32Array(INIT.length);
      let base = [INIT.slice(), INIT.slice()];
      let pending: Float32Array | null = null;
      const worst = (a: Float32Array, b: Float32Array) => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i])), 0);
      let landings = 0;
      for (let step = 0; step < 4 * H; step++) {
        // Before the step: the landing, when due (the trainer's step would make it; called first to see both sides).
        const before = await Promise.all(replicas.map((t) => t.fullParams()));
        const landed = await Promise.all(replicas.map((t) => t.landReplicas(step)));
        expect(landed[0], `step ${step}`).toBe(pending !== null && step % H === D);
        if (landed[0]) {
          landings++;
          for (let i = 0; i < anchor.length; i++) {
            const g = f(pending![i] * f(0.5));
            momentum[i] = f(f(f(0.9) * momentum[i]) + g);
            anchor[i] = f(anchor[i] - f(f(0.7) * f(g + f(f(0.9) * momentum[i]))));
          }
          pending = null;
          const after = await Promise.all(replicas.map((t) => t.fullParams()));
          for (const r of [0, 1]) {
            const replanted = anchor.map((a, i) => f(a - f(base[r][i] - before[r][i])));
            expect(worst(after[r], replanted), `step ${step} replica ${r}`).toBeLessThan(1e-7);
            base[r] = anchor.slice();
          }
          expect(Array.from(after[0])).not.toEqual(Array.from(after[1])); // each keeps its own progress since the sync
        }
        const rs = await Promise.all(replicas.map((t, r) => t.step(step, batch(step, r, 2))));
        expect(rs[0].synced ?? false).toBe((step + 1) % H === 0);
        if (rs[0].synced) {
          // The sync leaves the parameters as they are; the pseudo-gradients go in flight.
          const local = await Promise.all(replicas.map((t) => t.fullParams()));
          pending = new Float32Array(anchor.length);
          for (const r of [0, 1]) for (let i = 0; i < anchor.length; i++) pending[i] = f(pending[i] + f(base[r][i] - local[r][i]));
          base = local.map((l) => l.slice());
        }
      }
      expect(landings).toBe(3);
      // The run's end (after a sync): lands the last average; every replica on the anchor.
      await Promise.all(replicas.map((t) => t.syncReplicas()));
      for (let i = 0; i < anchor.length; i++) {
        const g = f(pending![i] * f(0.5));
        momentum[i] = f(f(f(0.9) * momentum[i]) + g);
        anchor[i] = f(anchor[i] - f(f(0.7) * f(g + f(f(0.9) * momentum[i]))));
      }
      const end = await Promise.all(replicas.map((t) => t.fullParams()));
      expect(Array.from(end[1])).toEqual(Array.from(end[0]));
      expect(worst(end[0], anchor)).toBeLessThan(1e-6);
      for (const t of replicas) t.dispose();
    });
  }

  it('one replica with outer lr 1 and momentum 0 follows plain data parallelism (ZeRO 2 inside the replica), within fp32 rounding', async () => {
    const run = async (diloco: boolean) => {
      const inner = fakeGroups(2);
      const outer = [fakeGroups(1)[0], fakeGroups(1)[0]];
      const ts = await Promise.all(inner.map((g, r) => trainer('host', g, 2, diloco ? { group: outer[r], every: 2, lr: 1, momentum: 0, codec: 'fp32' } : undefined)));
      const losses: number[] = [];
      let synced = 0;
      for (let step = 0; step < 8; step++) {
        const rs = await Promise.all(ts.map((t, r) => t.step(step, batch(step, r, 2))));
        losses.push(rs[0].loss);
        if (rs[0].synced) synced++;
      }
      const [params] = await Promise.all(ts.map((t) => t.fullParams())); // a collective under ZeRO 2
      const optimizerBytes = ts[0].modelStateBytes().optimizer;
      return { losses, params, synced, optimizerBytes };
    };
    const plain = await run(false);
    const diloco = await run(true);
    expect(diloco.synced).toBe(4);
    diloco.losses.forEach((l, i) => expect(Math.abs(l - plain.losses[i])).toBeLessThan(1e-6 * plain.losses[i]));
    let worst = 0;
    diloco.params.forEach((p, i) => (worst = Math.max(worst, Math.abs(p - plain.params[i]))));
    expect(worst).toBeLessThan(1e-6);
    // The outer state: anchor and momentum of this rank's optimizer ranges, beside AdamW's m and v.
    expect(diloco.optimizerBytes).toBe(2 * plain.optimizerBytes);
  });
});
