/**
 * The activation model against the memory meter: each segment of a real GPTSegments (embedding,
 * block, head) runs forward, backward and an evaluation forward on random inputs, and every
 * SegmentMemory field must equal what the meter measured, on wasm (host kernels with and without
 * SIMD, tf kernels) and cpu (host and tf kernels), for shapes that take every kernel branch
 * (fused and per-pair attention, SIMD and plain GEMMs, padded and unpadded dwpe) and tp 1 and 2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_CONFIGS, type GPTConfig } from '../config.js';
import { backendBytes, installMemoryMeter, takePeakBackendBytes } from '../device/memory-meter.js';
import { setSimdKernelsEnabled } from '../host/simd.js';
import { initParams } from '../init.js';
import type { GradValue } from '../layers/layer.js';
import type { KernelSet } from '../layers/layer-set.js';
import type { UnitParams } from '../model-params.js';
import { GPTSegments, type SegmentBatch, type UnitGradBuffer } from '../segments.js';
import type { TensorParallelGroup } from '../tensor-parallel/mappings.js';
import { fakeTensorParallelGroups } from '../testing/fake-tp-group.js';
import { randomArray, randomTokens, useBackend } from '../testing/helpers.js';
import { kernelConstantBytes, recomputeMemory, segmentMemory, segmentMemoryDetail, type ActivationShape, type SegmentMemoryKind, type SegmentMemory } from './activation-memory.js';

/**
 * Keeps what backward hands over as the engine's TfGradBuffer does (a tensor stays alive until
 * the buffer is disposed); host arrays are dropped, and the host embedding adds into `host`.
 */
class KeepingGradBuffer implements UnitGradBuffer {
  readonly kept: tf.Tensor[] = [];
  constructor(readonly host?: Float32Array) {}
  add(_offset: number, g: GradValue): void {
    if (!(g instanceof Float32Array)) this.kept.push(g);
  }
  dispose(): void {
    tf.dispose(this.kept.splice(0));
  }
}

/**
 * A tensor-parallel group of `size` in which this process is rank `rank` alone: all-reduce
 * leaves the buffer as it is. The meter sees one process, so one rank's memory is measured
 * without the other ranks' allocations interleaved; what the layers allocate does not depend
 * on the values the other ranks would have added.
 */
function soloGroup(size: number, rank: number): TensorParallelGroup {
  return { size, rank, allReduce: async () => {} };
}

interface Case {
  name: string;
  config: GPTConfig;
  batch: number;
  seqLen: number;
  tp: number;
  tpRank?: number;
}

const config = (vocabSize: number, dModel: number, heads: number, contextLength: number): GPTConfig => ({ vocabSize, contextLength, layers: 1, heads, dModel, layerNormEps: 1e-5 });

const CASES: Case[] = [
  { name: 'C32 H2 T16 B2 V64 (fused attention, SIMD GEMMs)', config: config(64, 32, 2, 32), batch: 2, seqLen: 16, tp: 1 },
  { name: 'C32 H4 T8 B1 V300 (hs 8, T = ctx: dwpe unpadded)', config: config(300, 32, 4, 8), batch: 1, seqLen: 8, tp: 1 },
  { name: 'C64 H4 T32 B4 V257 (odd vocabulary)', config: config(257, 64, 4, 40), batch: 4, seqLen: 32, tp: 1 },
  { name: 'C32 H2 T12 B2 V100 (per-pair attention)', config: config(100, 32, 2, 16), batch: 2, seqLen: 12, tp: 1 },
  { name: 'C24 H3 T10 B1 V65 (no SIMD shapes)', config: config(65, 24, 3, 16), batch: 1, seqLen: 10, tp: 1 },
  { name: 'tp2 C32 H2 T16 B2 V64', config: config(64, 32, 2, 32), batch: 2, seqLen: 16, tp: 2 },
  { name: 'tp2 rank 1 C64 H4 T8 B4 V257 (129 / 128 rows)', config: config(257, 64, 4, 16), batch: 4, seqLen: 8, tp: 2, tpRank: 1 },
  { name: 'tp2 C32 H4 T12 B1 V100', config: config(100, 32, 4, 12), batch: 1, seqLen: 12, tp: 2 },
];

const VARIANTS: { backend: 'wasm' | 'cpu'; kernels: KernelSet; simd: boolean }[] = [
  { backend: 'wasm', kernels: 'host', simd: true },
  { backend: 'wasm', kernels: 'host', simd: false },
  { backend: 'wasm', kernels: 'tf', simd: true },
  { backend: 'cpu', kernels: 'host', simd: false },
  { backend: 'cpu', kernels: 'tf', simd: false },
];

type Measured = Omit<SegmentMemory, 'peakAt'>;

/** One model on the active backend, its parameters uploaded, ready to measure its segments. */
class Rig {
  readonly model: GPTSegments;
  readonly params: Map<number, UnitParams>;
  readonly mb: SegmentBatch;
  private readonly shape: [number, number, number];

  constructor(c: Case, kernels: KernelSet) {
    this.model = new GPTSegments(c.config, { kernels, tensorParallel: c.tp > 1 ? soloGroup(c.tp, c.tpRank ?? 0) : undefined });
    const flat = this.model.shardOf(initParams(c.config, 7));
    this.params = new Map(this.model.units.map((u, i) => [i, this.model.unitParams(i, flat.subarray(u.start, u.end))]));
    const n = c.batch * c.seqLen;
    const targets = randomTokens(n, c.config.vocabSize, 2);
    targets[1] = -1; // a masked target
    this.mb = { tokens: randomTokens(n, c.config.vocabSize, 1), targets, batch: c.batch };
    this.shape = [c.batch, c.seqLen, c.config.dModel];
  }

  private activation(seed: number): tf.Tensor {
    return tf.tensor(randomArray(this.shape.reduce((a, b) => a * b), seed, 0.5), this.shape);
  }

  private grads(): Map<number, KeepingGradBuffer> {
    return new Map(this.model.units.map((u, i) => [i, new KeepingGradBuffer(this.model.kernels === 'host' ? new Float32Array(u.end - u.start) : undefined)]));
  }

  /** One forward and backward through every segment (creates the cached constants). */
  async warmUp(): Promise<void> {
    const saved = [];
    let x: tf.Tensor | null = null;
    for (let s = 0; s < this.model.segments.length; s++) {
      const r = await this.model.forward(s, this.params, x, this.mb, true);
      if (r.loss) await r.loss.loss;
      x?.dispose();
      x = r.y;
      saved.push(r.saved);
    }
    const grads = this.grads();
    let dy: tf.Tensor | null = null;
    for (let s = saved.length - 1; s >= 0; s--) {
      const dx = await this.model.backward(s, this.params, saved[s], dy, 1, grads);
      dy?.dispose();
      dy = dx;
    }
    grads.forEach((g) => g.dispose());
  }

  /** The meter's view of segment `seg`, defined as SegmentMemory's fields are. */
  async measure(seg: number, kind: SegmentMemoryKind): Promise<Measured> {
    const inputBytes = kind === 'embedding' ? 0 : 4 * this.shape.reduce((a, b) => a * b);
    const x = kind === 'embedding' ? null : this.activation(3);
    takePeakBackendBytes();
    const b0 = backendBytes();
    const r = await this.model.forward(seg, this.params, x, this.mb, true);
    if (r.loss) await r.loss.loss; // the tf head's loss scalar lives until read
    const forwardPeak = takePeakBackendBytes() - b0;
    const output = r.y ? 4 * r.y.size : 0;
    const saved = backendBytes() - b0 - output;
    const b1 = backendBytes();
    x?.dispose();
    r.y?.dispose();
    const savedInput = inputBytes + output + (backendBytes() - b1);

    const dy = kind === 'head' ? null : this.activation(4);
    const grads = this.grads();
    takePeakBackendBytes();
    const b2 = backendBytes();
    const dx = await this.model.backward(seg, this.params, r.saved, dy, 1, grads);
    const backwardPeak = takePeakBackendBytes() - b2;
    const backwardNet = backendBytes() - b2;
    const gradients = [...grads.values()].reduce((n, g) => n + g.kept.reduce((m, k) => m + 4 * k.size, 0), 0);
    dx?.dispose();
    dy?.dispose();
    grads.forEach((g) => g.dispose());

    const ex = kind === 'embedding' ? null : this.activation(5);
    takePeakBackendBytes();
    const b3 = backendBytes();
    const e = await this.model.forward(seg, this.params, ex, this.mb, false);
    if (e.loss) await e.loss.loss;
    const evalPeak = takePeakBackendBytes() - b3;
    e.y?.dispose();
    e.saved.release();
    ex?.dispose();
    return { saved, output, savedInput, forwardPeak, backwardPeak, backwardNet, evalPeak, gradients };
  }

  /** The meter's view of a checkpointed block: forward(train=false), then recompute + backward. */
  async measureRecompute(seg: number): Promise<{ forwardPeak: number; backwardPeak: number; backwardNet: number }> {
    const x = this.activation(3);
    takePeakBackendBytes();
    const b0 = backendBytes();
    const first = await this.model.forward(seg, this.params, x, this.mb, false);
    const forwardPeak = takePeakBackendBytes() - b0;
    first.y?.dispose();
    const dy = this.activation(4);
    const grads = this.grads();
    takePeakBackendBytes();
    const b1 = backendBytes();
    const again = await this.model.forward(seg, this.params, x, this.mb, true); // segment-runner's recompute
    again.y?.dispose();
    x.dispose();
    const dx = await this.model.backward(seg, this.params, again.saved, dy, 1, grads);
    const backwardPeak = takePeakBackendBytes() - b1;
    const backwardNet = backendBytes() - b1;
    dx?.dispose();
    dy.dispose();
    grads.forEach((g) => g.dispose());
    return { forwardPeak, backwardPeak, backwardNet };
  }

  dispose(): void {
    this.params.forEach((p) => p.dispose());
  }
}

const KINDS: { kind: SegmentMemoryKind; seg: (m: GPTSegments) => number }[] = [
  { kind: 'embedding', seg: () => 0 },
  { kind: 'block', seg: () => 1 },
  { kind: 'head', seg: (m) => m.segments.length - 1 },
];

function withoutPeakAt(m: SegmentMemory): Measured {
  const { peakAt: _, ...rest } = m;
  return rest;
}

describe('kernelConstantBytes', () => {
  // First in this file: no tf kernel has run on cpu yet, so the warm-up creates every constant.
  it('is what the tf kernel set caches on first use (causal mask, row numbers, scalars, shard bounds)', async () => {
    await useBackend('cpu');
    installMemoryMeter();
    const c = CASES.find((k) => k.tpRank === 1)!;
    const rig = new Rig(c, 'tf');
    const b0 = backendBytes();
    await rig.warmUp();
    expect(backendBytes() - b0).toBe(kernelConstantBytes(c.config, { batch: c.batch, seqLen: c.seqLen, kernels: 'tf', tp: c.tp, tpRank: c.tpRank }));
    rig.dispose();
  });
});

describe.each(VARIANTS)('activation memory on $backend / $kernels kernels (SIMD $simd)', ({ backend, kernels, simd }) => {
  beforeAll(async () => {
    await useBackend(backend);
    installMemoryMeter();
    setSimdKernelsEnabled(simd);
  });
  afterAll(() => setSimdKernelsEnabled(true));

  it.each(CASES)('$name: every field exactly as measured', async (c) => {
    const rig = new Rig(c, kernels);
    await rig.warmUp();
    const tensors = tf.memory().numTensors;
    const shape: ActivationShape = { batch: c.batch, seqLen: c.seqLen, kernels, tp: c.tp, tpRank: c.tpRank, simd: backend === 'wasm' && simd, backend };
    for (const { kind, seg } of KINDS) {
      const measured = await rig.measure(seg(rig.model), kind);
      expect({ kind, ...withoutPeakAt(segmentMemory(c.config, kind, shape)) }).toEqual({ kind, ...measured });
    }
    const recompute = recomputeMemory(c.config, shape);
    expect(await rig.measureRecompute(1)).toEqual({ forwardPeak: recompute.forwardPeak, backwardPeak: recompute.backwardPeak, backwardNet: recompute.backwardNet });
    expect(tf.memory().numTensors).toBe(tensors);
    rig.dispose();
  });
});

describe('two ranks of one tensor-parallel group, in one process', () => {
  it.each(['host', 'tf'] as const)('%s kernels: the ranks together keep the sum of their predictions', async (kernels) => {
    await useBackend('wasm');
    installMemoryMeter();
    setSimdKernelsEnabled(true);
    const c = CASES.find((k) => k.tp === 2 && k.config.vocabSize === 257)!;
    const groups = fakeTensorParallelGroups(2);
    const ranks = groups.map((g) => {
      const model = new GPTSegments(c.config, { kernels, tensorParallel: g });
      const flat = model.shardOf(initParams(c.config, 7));
      const params = new Map(model.units.map((u, i) => [i, model.unitParams(i, flat.subarray(u.start, u.end))]));
      return { model, params };
    });
    const n = c.batch * c.seqLen;
    const mb = { tokens: randomTokens(n, c.config.vocabSize, 1), targets: randomTokens(n, c.config.vocabSize, 2), batch: c.batch };
    // Both ranks run the whole chain forward; what stays alive is each rank's saved states.
    const forwardBoth = () =>
      Promise.all(
        ranks.map(async ({ model, params }) => {
          const saved = [];
          let x: tf.Tensor | null = null;
          for (let s = 0; s < model.segments.length; s++) {
            const r = await model.forward(s, params, x, mb, true);
            if (r.loss) await r.loss.loss;
            x?.dispose();
            x = r.y;
            saved.push(r.saved);
          }
          return saved;
        }),
      );
    (await forwardBoth()).flat().forEach((s) => s.release()); // creates the cached constants
    const b0 = backendBytes();
    const passes = await forwardBoth();
    const predicted = [0, 1].reduce((sum, rank) => {
      const shape: ActivationShape = { batch: c.batch, seqLen: c.seqLen, kernels, tp: 2, tpRank: rank, simd: true, backend: 'wasm' };
      const kept = (kind: SegmentMemoryKind) => {
        const m = segmentMemory(c.config, kind, shape);
        return m.saved + m.savedInput;
      };
      return sum + kept('embedding') + kept('block') + kept('head');
    }, 0);
    expect(backendBytes() - b0).toBe(predicted);
    passes.flat().forEach((s) => s.release());
    ranks.forEach((r) => r.params.forEach((p) => p.dispose()));
  });
});

/**
 * The closed forms of activation-memory.ts's doc comment, in elements, at training shapes
 * (N >= C, where the moments it lists are the largest), for named models up to 30B.
 */
describe('the closed forms documented in activation-memory.ts', () => {
  const SHAPES: { model: string; batch: number; seqLen: number }[] = [
    { model: 'gpt-nano', batch: 16, seqLen: 128 },
    { model: 'gpt-mini', batch: 8, seqLen: 256 },
    { model: 'gpt2-124m', batch: 4, seqLen: 1024 },
    { model: 'gpt-6.7b', batch: 2, seqLen: 2048 },
    { model: 'gpt-30b', batch: 1, seqLen: 2048 },
  ];

  it.each(SHAPES)('$model, B $batch, T $seqLen', ({ model, batch, seqLen }) => {
    const cfg = MODEL_CONFIGS[model];
    const N = batch * seqLen;
    const { dModel: C, vocabSize: V, heads: H, contextLength: ctx } = cfg;
    const T = seqLen;
    const F = 4 * C;
    const P = batch * H * T * T;
    const el = (m: SegmentMemory) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== 'peakAt').map(([k, v]) => [k, (v as number) / 4]));
    const max = Math.max;

    for (const backend of ['tensorflow', 'cpu'] as const) {
      const tf1: ActivationShape = { batch, seqLen, kernels: 'tf', tp: 1, backend };
      const cpu = backend === 'cpu';
      expect(el(segmentMemory(cfg, 'embedding', tf1))).toMatchObject({ output: N * C, saved: N, savedInput: 0, forwardPeak: 2 * N * C + T * C + N, backwardPeak: V * C + ctx * C, backwardNet: V * C + ctx * C - N });
      expect(el(segmentMemory(cfg, 'block', tf1))).toMatchObject({
        output: N * C,
        saved: 8 * N * C + 2 * N * F + 2 * N + P,
        savedInput: 0,
        forwardPeak: max(9 * N * C + 3 * N * F + 2 * N + P, 8 * N * C + N + 2 * P),
        backwardPeak: max(F * C + C + 4 * N * F, 2 * F * C + C * C + F + 4 * C + 2 * P + batch * H * T - 2 * N * F - N * C - N),
        evalPeak: max(N * C + 3 * N * F, 4 * N * C + 2 * P),
      });
      // cpu's casts share their input's buffer: the mask [N] stays the 1-byte bool
      const mask = cpu ? N / 4 : N;
      expect(el(segmentMemory(cfg, 'head', tf1))).toMatchObject({
        saved: 2 * N * C + N + N * V + N, // ln_f norm, rstd, y; probs; ids
        savedInput: 0,
        forwardPeak: 2 * N * V + 2 * N * C + 6 * N + mask,
        backwardPeak: max(N * V + 5 * N, V * C + 2 * N * C + 3 * N) + mask + 1,
        evalPeak: 2 * N * V + N * C + 4 * N + mask,
      });
    }

    for (const simd of [false, true]) {
      const host: ActivationShape = { batch, seqLen, kernels: 'host', tp: 1, simd };
      const gemm = simd && N % 4 === 0 && C % 8 === 0;
      const hs = C / H;
      const fused = simd && T % 8 === 0 && hs % 8 === 0;
      expect(el(segmentMemory(cfg, 'embedding', host))).toMatchObject({ output: N * C, saved: 0, forwardPeak: N * C, backwardPeak: 0 });
      expect(el(segmentMemory(cfg, 'block', host))).toMatchObject({
        output: N * C,
        saved: 7 * N * C + 3 * N * F + 4 * N + P,
        savedInput: N * C,
        forwardPeak: 9 * N * C + 3 * N * F + 4 * N + P,
        backwardPeak: max((gemm ? N * F : 2 * N * F) + F * C, fused ? 0 : 3 * P + 2 * N * C - 3 * N * F - 2 * N),
        evalPeak: max(N * C + 3 * N * F, fused ? 4 * N * C + P + 4 * T * hs + T * T : 6 * N * C + P),
      });
      expect(el(segmentMemory(cfg, 'head', host))).toMatchObject({
        saved: N * C + 2 * N + N * V,
        savedInput: N * C,
        forwardPeak: 2 * N * V + N * C + 2 * N,
        backwardPeak: gemm && V % 4 === 0 ? N * V + N * C + V * C : 2 * N * C + 2 * V * C,
      });
    }

    // tensor-parallel: the kept bytes with this rank's shard of heads, MLP and vocabulary
    for (const tp of [2, 4].filter((k) => H % k === 0)) {
      const Ca = C / tp;
      const Ft = F / tp;
      const Pt = P / tp;
      const Vt = Math.ceil(V / tp); // rank 0's rows
      const tfs: ActivationShape = { batch, seqLen, kernels: 'tf', tp };
      const hosts: ActivationShape = { ...tfs, kernels: 'host', simd: true };
      expect(el(segmentMemory(cfg, 'block', tfs)).saved).toBe(4 * N * C + 4 * N * Ca + 2 * N * Ft + 2 * N + Pt);
      expect(el(segmentMemory(cfg, 'head', tfs)).saved).toBe(2 * N * C + N + N * Vt + N);
      expect(el(segmentMemory(cfg, 'embedding', tfs)).saved).toBe(N);
      expect(el(segmentMemory(cfg, 'block', hosts)).saved).toBe(3 * N * C + 4 * N * Ca + 3 * N * Ft + 4 * N + Pt);
      expect(el(segmentMemory(cfg, 'head', hosts)).saved).toBe(N * C + 2 * N);
    }
  });
});

describe('segmentMemoryDetail', () => {
  it.each(['host', 'tf'] as const)('%s kernels: the listed tensors add up to the saved bytes and the peaks', (kernels) => {
    const cfg = MODEL_CONFIGS['gpt-nano'];
    const shape: ActivationShape = { batch: 4, seqLen: 64, kernels, tp: 2, simd: true };
    for (const kind of ['embedding', 'block', 'head'] as const) {
      const m = segmentMemory(cfg, kind, shape);
      const d = segmentMemoryDetail(cfg, kind, shape);
      const sum = (ts: { bytes: number }[]) => ts.reduce((n, t) => n + t.bytes, 0);
      expect([sum(d.saved), sum(d.forwardPeak), sum(d.evalPeak)]).toEqual([m.saved, m.forwardPeak, m.evalPeak]);
      // backward's peak is above a level its released saved state had: the listed new tensors are at least that
      expect(sum(d.backwardPeak)).toBeGreaterThanOrEqual(m.backwardPeak);
    }
    expect(segmentMemory(cfg, 'block', shape).peakAt.forward).toMatch(/^block\./);
  });
});

describe('segmentMemory input checks', () => {
  const cfg = MODEL_CONFIGS['gpt-nano'];
  it.each([
    [{ batch: 1, seqLen: 129, kernels: 'tf', tp: 1 }, 'TRAINER_ERR_MODEL_INPUT'],
    [{ batch: 0, seqLen: 8, kernels: 'tf', tp: 1 }, 'TRAINER_ERR_MODEL_INPUT'],
    [{ batch: 1, seqLen: 8, kernels: 'host', tp: 3 }, 'TRAINER_ERR_TP_INDIVISIBLE'],
    [{ batch: 1, seqLen: 8, kernels: 'host', tp: 2, tpRank: 2 }, 'TRAINER_ERR_MODEL_INPUT'],
  ] as [ActivationShape, string][])('%o is refused with %s', (shape, code) => {
    expect(() => segmentMemory(cfg, 'block', shape)).toThrow(expect.objectContaining({ code }));
  });
});
