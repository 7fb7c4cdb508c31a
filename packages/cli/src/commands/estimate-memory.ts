import { Command } from 'commander';
import { candidateLayouts, estimateModelState, planMemory, RUNTIME_BYTES, type MemoryPlan, type ZeroStage } from '@trainer/engine';
import { detectGpuMemory, type TrainJob } from '@trainer/launcher';
import { loraTargetLinears, parameterCount, resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import { exitCode } from '../action.js';
import { formatBytes } from '../format.js';
import { kernelsOf, onGpu, traceBackendOf } from '../memory-check.js';
import { int, oneOf, parseByteSize } from '../parse.js';
import { BACKENDS, KERNEL_SETS } from '../train-options.js';

/**
 * `trainer estimate-memory`: a worker's peak memory before anything runs (engine's
 * memory-plan.ts), for one layout or every layout a number of workers can form, against what a
 * worker has (the GPU's memory; host memory on wasm and cpu). For GPU backends without a GPU here
 * it assumes 80 GB GPUs (A100/H100), as `--device-memory` sets.
 */
interface EstimateOptions {
  model: string; vocabSize?: number; contextLength?: number; layers?: number; heads?: number; dModel?: number;
  nodes: number; tp?: number; pp?: number; zero?: number; precision: 'fp32' | 'bf16' | 'fp16'; activationCheckpointing?: boolean;
  microBatch: number; microBatches?: number; seqLen?: number; backend: (typeof BACKENDS)[number]; kernels: (typeof KERNEL_SETS)[number];
  deviceMemory?: number; json?: boolean; modelState?: boolean;
  loraRank?: number; loraTargets: string[];
}

const ASSUMED_GPU_BYTES = 80e9;

export function estimateMemoryCommand(): Command {
  return new Command('estimate-memory')
    .description('predict a worker\'s peak memory (model state, activations, transients) before anything runs: one layout, or which layouts of --nodes workers fit')
    .option('--model <name>', 'named model config (gpt-nano, gpt-mini, gpt2-124m, gpt2-1.5b, gpt-6.7b, gpt-30b)', 'gpt-nano')
    .option('--vocab-size <n>', 'override the vocabulary size', int(257))
    .option('--context-length <n>', 'override the context length', int(1))
    .option('--layers <n>', 'override the number of blocks', int(1))
    .option('--heads <n>', 'override the number of heads', int(1))
    .option('--d-model <n>', 'override the width', int(1))
    .option('--nodes <n>', 'workers (one per GPU)', int(1, 1 << 20), 1)
    .option('--tp <n>', 'one layout: tensor-parallel size (with --pp and --zero; default: every layout that fits)', int(1, 1024))
    .option('--pp <n>', 'one layout: pipeline stages', int(1, 1024))
    .option('--zero <stage>', 'one layout: ZeRO stage', int(0, 3))
    .option('--precision <p>', 'fp32, bf16 or fp16', oneOf(['fp32', 'bf16', 'fp16'] as const), 'fp32')
    .option('--activation-checkpointing', 'recompute blocks in backward')
    .option('--micro-batch <n>', 'sequences per micro-batch', int(1), 1)
    .option('--micro-batches <n>', 'micro-batches per step (pipelines keep up to --pp in flight; default 2 x pp)', int(1))
    .option('--seq-len <n>', 'tokens per sequence (default: the context length)', int(1))
    .option('--backend <name>', `backend the run will use: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'cuda')
    .option('--kernels <set>', 'kernel set (auto: tf on GPU backends, host on wasm and cpu)', oneOf(KERNEL_SETS), 'auto')
    .option('--device-memory <size>', 'memory one worker has, e.g. 80GB (default: nvidia-smi\'s, else 80 GB for GPU backends, host memory / nodes on wasm and cpu)', parseByteSize)
    .option('--lora-rank <r>', 'LoRA: only rank-r adapters on --lora-targets are trained (their state partitioned by ZeRO); the frozen base is a resident compute copy', int(1))
    .option('--lora-targets <list>', 'with --lora-rank: the adapted linears, comma-separated (q,k,v,o,gate,up,down)', (v: string) => v.split(',').map((t) => t.trim()).filter((t) => t.length > 0), ['q', 'v'])
    .option('--model-state', 'only the model state per ZeRO stage (no activations), as the ZeRO paper counts it')
    .option('--json', 'JSON lines')
    .action(exitCode(async (o: EstimateOptions) => {
      const overrides = Object.fromEntries(Object.entries({ vocabSize: o.vocabSize, contextLength: o.contextLength, layers: o.layers, heads: o.heads, dModel: o.dModel }).filter(([, v]) => v !== undefined));
      const config = resolveModelConfig(o.model, overrides);
      const gpuBackend = o.backend === 'cuda' || o.backend === 'webgpu' || o.backend === 'tensorflow' || o.backend === 'auto';
      const kernels = kernelsOf(o.backend, o.kernels, gpuBackend);
      const gpu = onGpu(o.backend, kernels, gpuBackend);
      if (o.modelState) return modelStateTable(o, config, kernels);
      const capacity = await capacityOf(o, gpu);
      const seqLen = o.seqLen ?? config.contextLength;
      const lora = o.loraRank !== undefined ? { rank: o.loraRank, alpha: o.loraRank, dropout: 0, targets: o.loraTargets } : null;
      if (lora) loraTargetLinears(config, lora); // unknown targets refused before any layout is tried
      const layouts = o.tp !== undefined || o.pp !== undefined || o.zero !== undefined
        ? [{ tp: o.tp ?? 1, pp: o.pp ?? 1, zero: (o.zero ?? 0) as ZeroStage }]
        : candidateLayouts(config, o.nodes);
      const runtime = gpu ? RUNTIME_BYTES.gpu : RUNTIME_BYTES.cpu;
      const rows: { layout: string; dp: number; tp: number; pp: number; zero: number; plan: MemoryPlan; worker: number; fits: boolean }[] = [];
      for (const l of layouts) {
        let plan: MemoryPlan;
        try {
          plan = planMemory({
            config, world: o.nodes, tp: l.tp, pp: l.pp, zero: l.zero, precision: o.precision, kernels, activationCheckpointing: o.activationCheckpointing ?? false,
            microBatch: o.microBatch, microBatches: o.microBatches ?? (l.pp > 1 ? 2 * l.pp : 1), seqLen, backend: traceBackendOf(o.backend as TrainJob['backend'], kernels, gpuBackend), simd: o.backend !== 'cpu',
            ...(lora ? { lora } : {}),
          });
        } catch (err) {
          if (layouts.length === 1) throw err;
          continue; // this model cannot take the layout (heads, blocks)
        }
        const worker = plan.worst.device + (gpu ? 0 : plan.worst.host) + runtime;
        rows.push({ layout: `${plan.dp} x ${l.tp} x ${l.pp}`, dp: plan.dp, tp: l.tp, pp: l.pp, zero: l.zero, plan, worker, fits: worker <= capacity.bytes });
      }
      const shown = layouts.length === 1 ? rows : rows.filter((r) => r.fits);
      if (o.json) {
        for (const r of shown) {
          const w = r.plan.worst;
          process.stdout.write(JSON.stringify({
            model: o.model, parameters: parameterCount(config), world: o.nodes, dp: r.dp, tp: r.tp, pp: r.pp, zero: r.zero, precision: o.precision, kernels,
            micro_batch: o.microBatch, seq_len: seqLen, activation_checkpointing: o.activationCheckpointing ?? false, ...(lora ? { lora_rank: lora.rank, lora_targets: lora.targets } : {}),
            worker_bytes: r.worker, capacity_bytes: capacity.bytes, fits: r.fits, worst_stage: w.stage,
            model_state_bytes: w.stateAtPeak, model_state_max_bytes: w.state.total, activation_bytes: w.activations, transient_bytes: w.transient, device_bytes: w.device, host_bytes: w.host, runtime_bytes: runtime, peak_at: w.peakAt,
            stages: r.plan.ranks.map((x) => ({ stage: x.stage, device_bytes: x.device, host_bytes: x.host, model_state_bytes: x.stateAtPeak, activation_bytes: x.activations, transient_bytes: x.transient, peak_at: x.peakAt })),
          }) + '\n');
        }
        return 0;
      }
      const where = gpu ? 'GPU' : 'worker';
      process.stdout.write(`${o.model} (${parameterCount(config).toLocaleString('en-US')} parameters) on ${o.nodes} ${where}s of ${formatBytes(capacity.bytes)} (${capacity.what}); ` +
        `${o.precision}, ${kernels} kernels, micro-batch ${o.microBatch} x ${seqLen} tokens${o.activationCheckpointing ? ', activation checkpointing' : ''}${lora ? `, LoRA rank ${lora.rank} on ${lora.targets.join(',')} (frozen base resident)` : ''}; per ${where} at its peak:\n`);
      process.stdout.write(`${'dp x tp x pp'.padEnd(16)}${'ZeRO'.padStart(5)}${'model state'.padStart(14)}${gpu ? '' : 'host state'.padStart(13)}${'activations'.padStart(14)}${'working set'.padStart(14)}${'runtime'.padStart(11)}${'total'.padStart(12)}  fits  peak at\n`);
      for (const r of shown) {
        const w = r.plan.worst;
        process.stdout.write(`${r.layout.padEnd(16)}${String(r.zero).padStart(5)}${formatBytes(w.stateAtPeak).padStart(14)}${gpu ? '' : formatBytes(w.host).padStart(13)}${formatBytes(w.activations).padStart(14)}${formatBytes(w.transient).padStart(14)}${formatBytes(runtime).padStart(11)}${formatBytes(r.worker).padStart(12)}  ${(r.fits ? 'yes' : 'no').padEnd(4)}  stage ${w.stage}: ${w.peakAt}\n`);
      }
      if (layouts.length > 1) process.stdout.write(`${shown.length} of ${rows.length} layouts fit${shown.length ? '' : ': lower --micro-batch or --seq-len, add --activation-checkpointing, or use more workers'}.\n`);
      return 0;
    }));
}

/** What one worker has: --device-memory, nvidia-smi's, 80 GB assumed for GPU backends, or host memory per worker. */
async function capacityOf(o: EstimateOptions, gpu: boolean): Promise<{ bytes: number; what: string }> {
  if (o.deviceMemory !== undefined) return { bytes: o.deviceMemory, what: '--device-memory' };
  if (gpu) {
    const gpus = await detectGpuMemory();
    if (gpus.length) return { bytes: Math.min(...gpus.map((g) => g.bytes)), what: 'nvidia-smi' };
    return { bytes: ASSUMED_GPU_BYTES, what: 'assumed 80 GB GPUs: --device-memory to change' };
  }
  const { totalmem } = await import('node:os');
  return { bytes: Math.floor(totalmem() / o.nodes), what: `host memory / ${o.nodes} workers on this machine` };
}

/** --model-state: the model-state categories per ZeRO stage (the ZeRO paper's accounting beside ours). */
function modelStateTable(o: EstimateOptions, config: ReturnType<typeof resolveModelConfig>, kernels: 'host' | 'tf'): number {
  const units = unitComputeCosts(config, kernels);
  const segments = segmentSpecs(config);
  const stages: ZeroStage[] = o.zero === undefined ? [0, 1, 2, 3] : [o.zero as ZeroStage];
  if (!o.json) {
    process.stdout.write(`${o.model}: ${units[units.length - 1].end.toLocaleString('en-US')} parameters, ${o.nodes} worker(s), ${o.precision}, ${kernels} kernels; model state per worker (rank 0):\n`);
    process.stdout.write(`${'stage'.padEnd(6)}${'params'.padStart(12)}${'fp32 master'.padStart(13)}${'compute copy'.padStart(14)}${'gradients'.padStart(12)}${'optimizer'.padStart(12)}${'total'.padStart(12)}${'ZeRO paper'.padStart(13)}\n`);
  }
  for (const stage of stages) {
    const e = estimateModelState(units, segments, stage, o.nodes, 0, o.precision, kernels);
    if (o.json) {
      process.stdout.write(JSON.stringify({ model: o.model, backend: o.backend, kernels, ...e }) + '\n');
    } else {
      process.stdout.write(`${String(stage).padEnd(6)}${formatBytes(e.params).padStart(12)}${formatBytes(e.master).padStart(13)}${formatBytes(e.paramsCompute).padStart(14)}${formatBytes(e.grads).padStart(12)}${formatBytes(e.optimizer).padStart(12)}${formatBytes(e.total).padStart(12)}${formatBytes(e.zeroPaper).padStart(13)}\n`);
    }
  }
  if (!o.json) process.stdout.write('ZeRO paper: (4 + 4 + 8) bytes/parameter for fp32 Adam, (2 + 2 + 12) mixed, partitioned by stage; ours adds the backend\'s compute copy and in-flight gradient buffers.\n');
  return 0;
}
