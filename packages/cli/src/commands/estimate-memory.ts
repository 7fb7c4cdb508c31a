import { Command } from 'commander';
import { estimateModelState, type ZeroStage } from '@trainer/engine';
import { resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import { exitCode } from '../action.js';
import { int, oneOf } from '../parse.js';
import { BACKENDS } from '../train-options.js';

/** Which kernel set a backend uses (model/src/layers/layer-set.ts): host kernels on wasm and cpu. */
export function kernelsFor(backend: (typeof BACKENDS)[number], hasGpu: boolean): 'host' | 'tf' {
  if (backend === 'wasm' || backend === 'cpu') return 'host';
  if (backend === 'auto') return hasGpu ? 'tf' : 'host';
  return 'tf';
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 2 : 0)} ${units[i]}`;
}

export function estimateMemoryCommand(): Command {
  return new Command('estimate-memory')
    .description('predict the model-state memory per worker under each ZeRO stage, before anything runs')
    .option('--model <name>', 'named model config', 'gpt-nano')
    .option('--vocab-size <n>', 'override the vocabulary size', int(257))
    .option('--context-length <n>', 'override the context length', int(1))
    .option('--layers <n>', 'override the number of blocks', int(1))
    .option('--heads <n>', 'override the number of heads', int(1))
    .option('--d-model <n>', 'override the width', int(1))
    .option('--nodes <n>', 'data-parallel workers', int(1, 1 << 20), 1)
    .option('--zero <stage>', 'one ZeRO stage (default: all four)', int(0, 3))
    .option('--precision <p>', 'fp32, bf16 or fp16', oneOf(['fp32', 'bf16', 'fp16'] as const), 'fp32')
    .option('--backend <name>', `backend the run will use (its kernels decide the compute copy): ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'wasm')
    .option('--json', 'one JSON object per stage')
    .action(exitCode(async (o: { model: string; vocabSize?: number; contextLength?: number; layers?: number; heads?: number; dModel?: number; nodes: number; zero?: number; precision: 'fp32' | 'bf16' | 'fp16'; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const overrides = Object.fromEntries(Object.entries({ vocabSize: o.vocabSize, contextLength: o.contextLength, layers: o.layers, heads: o.heads, dModel: o.dModel }).filter(([, v]) => v !== undefined));
      const config = resolveModelConfig(o.model, overrides);
      const kernels = kernelsFor(o.backend, false);
      const units = unitComputeCosts(config, kernels);
      const segments = segmentSpecs(config);
      const stages: ZeroStage[] = o.zero === undefined ? [0, 1, 2, 3] : [o.zero as ZeroStage];
      if (!o.json) {
        process.stdout.write(`${o.model}: ${units[units.length - 1].end.toLocaleString('en-US')} parameters, ${o.nodes} worker(s), ${o.precision}, ${kernels} kernels; per worker (rank 0):\n`);
        process.stdout.write(`${'stage'.padEnd(6)}${'params'.padStart(12)}${'fp32 master'.padStart(13)}${'compute copy'.padStart(14)}${'gradients'.padStart(12)}${'optimizer'.padStart(12)}${'total'.padStart(12)}${'ZeRO paper'.padStart(13)}\n`);
      }
      for (const stage of stages) {
        const e = estimateModelState(units, segments, stage, o.nodes, 0, o.precision);
        if (o.json) {
          process.stdout.write(JSON.stringify({ model: o.model, backend: o.backend, ...e }) + '\n');
        } else {
          process.stdout.write(`${String(stage).padEnd(6)}${formatBytes(e.params).padStart(12)}${formatBytes(e.master).padStart(13)}${formatBytes(e.paramsCompute).padStart(14)}${formatBytes(e.grads).padStart(12)}${formatBytes(e.optimizer).padStart(12)}${formatBytes(e.total).padStart(12)}${formatBytes(e.zeroPaper).padStart(13)}\n`);
        }
      }
      if (!o.json) process.stdout.write('ZeRO paper: (4 + 4 + 8) bytes/parameter for fp32 Adam, (2 + 2 + 12) mixed, partitioned by stage; ours adds the backend\'s fp32 compute copy and in-flight gradient buckets.\n');
      return 0;
    }));
}
