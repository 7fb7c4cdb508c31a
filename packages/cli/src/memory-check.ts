import { freemem } from 'node:os';
import { candidateLayouts, meshShape, planMemory, RUNTIME_BYTES, type MemoryPlan, type MemoryPlanInput, type ZeroStage } from '@trainer/engine';
import { TrainerError } from '@trainer/errors';
import { detectGpuMemory, type TrainJob } from '@trainer/launcher';
import type { KernelSet, TraceBackend } from '@trainer/model';
import { formatBytes } from './format.js';

/**
 * The memory check before a run starts: the planner's peak for the job's layout (engine's
 * memory-plan.ts: model state, activations, transients, plus the process's runtime) against what
 * one worker may use. Over a limit the user set (--max-memory) the run is refused before any
 * worker starts, naming the layouts of the same workers that fit; over what the machine has, a
 * warning with the numbers.
 */

/** What one worker may use, and where the number comes from. */
export interface MemoryCapacity {
  bytes: number;
  what: string;
  /** Set by the user (--max-memory): exceeding it refuses the run. */
  explicit: boolean;
}

/** The kernel set a job will run: `auto` is tf on GPU backends, host on wasm and cpu. */
export function kernelsOf(backend: TrainJob['backend'], kernels: TrainJob['kernels'], hasGpu: boolean): KernelSet {
  if (kernels !== 'auto') return kernels;
  if (backend === 'wasm' || backend === 'cpu') return 'host';
  if (backend === 'auto') return hasGpu ? 'tf' : 'host';
  return 'tf';
}

/** The planner's name for a TF.js backend (what decides whether a cast copies). */
export function traceBackendOf(backend: TrainJob['backend'], kernels: KernelSet, hasGpu: boolean): TraceBackend {
  if (backend === 'wasm' || backend === 'cpu') return backend;
  if (backend === 'auto' && !hasGpu) return 'wasm';
  return kernels === 'tf' ? 'tensorflow' : 'wasm';
}

/** Whether a worker's memory is a GPU's (the tf kernel set on a GPU backend) or the host's. */
export function onGpu(backend: TrainJob['backend'], kernels: KernelSet, hasGpu: boolean): boolean {
  return kernels === 'tf' && (backend === 'cuda' || backend === 'webgpu' || ((backend === 'auto' || backend === 'tensorflow') && hasGpu));
}

/** The planner's input for a job on `world` workers, another layout when given. */
export function planInput(job: TrainJob, world: number, hasGpu: boolean, layout?: { tp: number; pp: number; zero: ZeroStage }): MemoryPlanInput {
  const kernels = kernelsOf(job.backend, job.kernels, hasGpu);
  const tp = layout?.tp ?? job.tp;
  const pp = layout?.pp ?? job.pp;
  const { dp } = meshShape(world, tp, pp);
  const microBatches = Math.max(1, Math.round(job.globalBatch / (dp * job.microBatch)));
  return {
    config: job.model, world, tp, pp, zero: layout?.zero ?? job.zero, precision: job.precision, kernels,
    activationCheckpointing: job.activationCheckpointing, microBatch: job.microBatch, microBatches, seqLen: job.seqLen,
    ...(layout === undefined && job.ppSplit ? { ppSplit: job.ppSplit } : {}),
    backend: traceBackendOf(job.backend, kernels, hasGpu), simd: job.backend !== 'cpu',
    ...(job.lora ? { lora: job.lora } : {}),
  };
}

/** A worker's peak bytes under a plan: the worst rank's backend and host bytes, plus the runtime. */
export function workerBytes(plan: MemoryPlan, gpu: boolean): number {
  const r = plan.worst;
  return gpu ? r.device + RUNTIME_BYTES.gpu : r.device + r.host + RUNTIME_BYTES.cpu;
}

/** The limit a worker runs under: --max-memory, else the GPU's memory, else free host memory shared by the machine's workers. */
export async function memoryCapacity(maxMemory: number | undefined, gpu: boolean, localWorkers: number): Promise<MemoryCapacity> {
  if (maxMemory !== undefined) return { bytes: maxMemory, what: `--max-memory ${formatBytes(maxMemory)}`, explicit: true };
  if (gpu) {
    const gpus = await detectGpuMemory();
    if (gpus.length) return { bytes: Math.min(...gpus.map((g) => g.bytes)), what: `the GPU's ${formatBytes(Math.min(...gpus.map((g) => g.bytes)))} (nvidia-smi)`, explicit: false };
  }
  const free = freemem();
  return { bytes: Math.floor(free / localWorkers), what: `this machine's free memory (${formatBytes(free)}) shared by ${localWorkers} worker(s)`, explicit: false };
}

/**
 * Before a run: refuses (TRAINER_ERR_MEMORY_PLAN) a job whose predicted worker peak exceeds an
 * explicit limit, warns when it exceeds what the machine has. Returns the plan.
 */
export function checkJobMemory(job: TrainJob, world: number, hasGpu: boolean, capacity: MemoryCapacity, warn: (msg: string) => void): MemoryPlan {
  const gpu = onGpu(job.backend, kernelsOf(job.backend, job.kernels, hasGpu), hasGpu);
  const plan = planMemory(planInput(job, world, hasGpu));
  const need = workerBytes(plan, gpu);
  if (need <= capacity.bytes) return plan;
  const r = plan.worst;
  const what = `ZeRO ${job.zero}, tp ${job.tp}, pp ${job.pp} on ${world} workers needs ${formatBytes(need)} per worker at its peak ` +
    `(${describePeak(plan, gpu)}) but ${capacity.what} allows ${formatBytes(capacity.bytes)}`;
  const fits = layoutsThatFit(job, world, hasGpu, capacity.bytes, gpu);
  const hint = fits.length
    ? `layouts of ${world} workers that fit: ${fits.slice(0, 4).map((f) => `${flags(f)} (${formatBytes(f.bytes)})`).join(', ')}; or fewer sequences per micro-batch (--micro-batch), --activation-checkpointing, more workers`
    : `no layout of ${world} workers fits at this micro-batch: lower --micro-batch or --seq-len, add --activation-checkpointing, or use more workers`;
  if (capacity.explicit) {
    throw new TrainerError('TRAINER_ERR_MEMORY_PLAN', `the run does not fit: ${what}`, {
      hint, details: { needBytes: need, limitBytes: capacity.bytes, stage: r.stage, peakAt: r.peakAt },
    });
  }
  warn(`the run may not fit: ${what}; expect swapping or an out-of-memory kill. ${hint}`);
  return plan;
}

/** The parts of a plan's peak, in words. */
export function describePeak(plan: MemoryPlan, gpu: boolean): string {
  const r = plan.worst;
  const host = gpu || r.host === 0 ? '' : `, model state in host memory ${formatBytes(r.host)}`;
  return `pipeline stage ${r.stage}: model state ${formatBytes(r.state.total)}, activations ${formatBytes(r.activations)}, working set ${formatBytes(r.transient)} at the ${r.peakAt}` +
    `${host}, runtime ${formatBytes(gpu ? RUNTIME_BYTES.gpu : RUNTIME_BYTES.cpu)}`;
}

/** Every layout of `world` workers whose worker peak is within `limit`, smallest first. */
export function layoutsThatFit(job: TrainJob, world: number, hasGpu: boolean, limit: number, gpu: boolean): { tp: number; pp: number; zero: ZeroStage; bytes: number }[] {
  return candidateLayouts(job.model, world)
    .flatMap((l) => {
      try {
        return [{ ...l, bytes: workerBytes(planMemory(planInput(job, world, hasGpu, l)), gpu) }];
      } catch {
        return []; // a layout this model cannot take (e.g. a batch that does not divide)
      }
    })
    .filter((l) => l.bytes <= limit)
    .sort((a, b) => a.bytes - b.bytes);
}

function flags(l: { tp: number; pp: number; zero: number }): string {
  return [`--zero ${l.zero}`, ...(l.tp > 1 ? [`--tp ${l.tp}`] : []), ...(l.pp > 1 ? [`--pp ${l.pp}`] : [])].join(' ');
}
