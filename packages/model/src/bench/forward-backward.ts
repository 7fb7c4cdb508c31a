/**
 * benchForwardBackward: times GPT.forwardBackward (plus setParams, which a training step also
 * runs after every optimizer update) on random tokens, with a per-phase ms breakdown. Synchronous
 * backends only give meaningful phase times (wasm, cpu); the total is right everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GPTConfig } from '../config.js';
import { resolveModelConfig } from '../config.js';
import { flopsPerToken } from '../flops.js';
import { GPT } from '../gpt.js';
import { initParams } from '../init.js';
import type { KernelSet } from '../layers/layer-set.js';
import { Profiler } from '../profiler.js';
import { Rng } from '../prng.js';

export interface ForwardBackwardBenchOptions {
  /** Model name (default gpt-nano) and overrides. */
  model?: string;
  overrides?: Partial<GPTConfig>;
  /** Sequences per micro-batch (default 8). */
  batch?: number;
  /** Sequence length (default contextLength). */
  seqLen?: number;
  /** Timed steps (default 10) after warmup steps (default 3). */
  steps?: number;
  warmup?: number;
  kernels?: KernelSet;
  /** Upload parameters every step, as training does (default true). */
  setParamsEachStep?: boolean;
  /** Also run one step under tf.profile: kernel count and device time per phase and per kernel. */
  kernelProfile?: boolean;
}

/**
 * One step's kernels, attributed to the phases (layers' forward/backward) that launched them. On
 * WebGPU with timestamp queries the times are GPU execution times of each program (each timed
 * program is submitted alone, so the profiled step is slower than a plain one, but the shares hold);
 * elsewhere each kernel's wall time.
 */
export interface KernelProfile {
  timer: 'gpu-timestamps' | 'wall';
  kernels: number;
  ms: number;
  phases: { phase: string; kernels: number; ms: number; share: number }[];
  /** By kernel name, the most time first (at most 12). */
  top: { name: string; kernels: number; ms: number; share: number }[];
}

export interface ForwardBackwardBenchResult {
  backend: string;
  kernels: KernelSet;
  model: string;
  config: GPTConfig;
  batch: number;
  seqLen: number;
  tokensPerStep: number;
  /** Per-step wall time: median (the headline), mean and min over the timed steps. */
  msPerStep: { median: number; mean: number; min: number };
  tokensPerSecond: number;
  flopsPerStep: number;
  /** flopsPerStep / median step time. */
  gflops: number;
  /** Mean ms per step of each phase (layers are timed at their forward/backward calls). */
  phases: { phase: string; msPerStep: number; calls: number }[];
  /** TF.js tensors alive after the run minus before (0 = no leak). */
  tensorDelta: number;
  kernelProfile?: KernelProfile;
}

export async function benchForwardBackward(opts: ForwardBackwardBenchOptions = {}): Promise<ForwardBackwardBenchResult> {
  const name = opts.model ?? 'gpt-nano';
  const config = resolveModelConfig(name, opts.overrides);
  const batch = opts.batch ?? 8;
  const T = opts.seqLen ?? config.contextLength;
  const steps = opts.steps ?? 10;
  const warmup = opts.warmup ?? 3;
  const setEachStep = opts.setParamsEachStep ?? true;
  const tensorsBefore = tf.memory().numTensors;
  const profiler = new Profiler();
  const model = new GPT(config, { kernels: opts.kernels, profiler });
  const params = initParams(config, 1);
  model.setParams(params);
  const rng = new Rng(7);
  const tokens = Int32Array.from({ length: batch * T }, () => rng.nextU32() % config.vocabSize);
  const targets = Int32Array.from({ length: batch * T }, () => rng.nextU32() % config.vocabSize);
  const grads = new Float32Array(model.layout.totalSize);
  const step = async (): Promise<void> => {
    if (setEachStep) model.setParams(params);
    await model.forwardBackward(tokens, targets, batch, grads);
  };
  for (let i = 0; i < warmup; i++) await step();
  profiler.reset();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  const kernelProfile = opts.kernelProfile ? await profileKernels(profiler, step) : undefined;
  model.dispose();
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const tokensPerStep = batch * T;
  const flopsPerStep = flopsPerToken(config, T) * tokensPerStep;
  return {
    backend: tf.getBackend(),
    kernels: model.kernels,
    model: name,
    config,
    batch,
    seqLen: T,
    tokensPerStep,
    msPerStep: { median, mean: times.reduce((a, b) => a + b, 0) / times.length, min: sorted[0] },
    tokensPerSecond: tokensPerStep / (median / 1000),
    flopsPerStep,
    gflops: flopsPerStep / (median / 1000) / 1e9,
    phases: profiler.report().map((p) => ({ phase: p.phase, msPerStep: p.ms / steps, calls: p.calls / steps })),
    tensorDelta: tf.memory().numTensors - tensorsBefore,
    ...(kernelProfile ? { kernelProfile } : {}),
  };
}

async function profileKernels(profiler: Profiler, step: () => Promise<void>): Promise<KernelProfile> {
  profiler.reset();
  const info = await tf.profile(async () => {
    await step();
  });
  // Ops with their own gradient (fusedMatMul) are recorded as a scope `name__op` around the
  // registered kernel they run: keep the kernels only, or their time counts twice.
  const kernels = info.kernels.map((k) => (k.name.endsWith('__op') ? null : k));
  const gpu = tf.getBackend() === 'webgpu' && (tf.backend() as unknown as { supportTimestampQuery?: boolean }).supportTimestampQuery === true;
  const msOf = (k: { kernelTimeMs: unknown }) => (typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0);
  const real = kernels.filter((k) => k !== null);
  const total = real.reduce((a, k) => a + msOf(k), 0);
  const share = (ms: number) => (total > 0 ? ms / total : 0);
  const byName = new Map<string, { kernels: number; ms: number }>();
  for (const k of real) {
    const e = byName.get(k.name) ?? { kernels: 0, ms: 0 };
    e.kernels++;
    e.ms += msOf(k);
    byName.set(k.name, e);
  }
  const phases = profiler.kernelPhases(kernels).map((p) => ({ ...p, share: share(p.ms) }));
  profiler.reset();
  return {
    timer: gpu ? 'gpu-timestamps' : 'wall',
    kernels: real.length,
    ms: total,
    phases,
    top: [...byName].map(([name, e]) => ({ name, ...e, share: share(e.ms) })).sort((a, b) => b.ms - a.ms).slice(0, 12),
  };
}
