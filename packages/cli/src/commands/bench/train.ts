import type { Command } from 'commander';
import { exitCode } from '../../action.js';
import { int, oneOf } from '../../parse.js';
import { BACKENDS } from '../../train-options.js';
import { flopsPerToken, initBackend, measureMatMulPeak, resolveModelConfig } from '@trainer/model';
import { runSynthetic } from './synthetic-run.js';

/** `trainer bench train`: tokens/s, step time and MFU against the backend's own matMul peak. */
export function addTrainBench(cmd: Command): void {
  cmd
    .command('train')
    .description('training throughput on random tokens (as the PyTorch DDP peer): tokens/s, step time, MFU')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--world <n>', 'worker processes', int(1, 64), 1)
    .option('--batch <n>', 'sequences per worker per step', int(1), 8)
    .option('--steps <n>', 'timed steps', int(1), 20)
    .option('--warmup <n>', 'untimed steps first', int(0), 3)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--json', 'one JSON object')
    .action(exitCode(async (o: { model: string; world: number; batch: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const config = resolveModelConfig(o.model);
      // The peak of this backend's plain 2-D matMul, measured now, is the MFU denominator.
      await initBackend(o.backend, () => undefined);
      const peak = await measureMatMulPeak();
      const result = await runSynthetic({ model: o.model, world: o.world, globalBatch: o.batch * o.world, steps: o.steps, warmup: o.warmup, backend: o.backend, quiet: o.json });
      if (!result.outcome.ok) return result.exitCode;
      const r = result.outcome.results[0];
      const tokensPerS = Number(r.tokens_per_s);
      const flops = flopsPerToken(config, config.contextLength);
      const mfu = (tokensPerS * flops) / (o.world * peak.gflops * 1e9);
      const out = {
        model: o.model, world: o.world, batch: o.batch, ctx: config.contextLength, backend: r.backend,
        tokens_per_s: tokensPerS, step_ms: Number(r.step_ms), mfu, matmul_peak_gflops: peak.gflops, flops_per_token: flops,
      };
      process.stdout.write(o.json ? JSON.stringify(out) + '\n'
        : `${o.model} on ${o.world} worker(s): ${tokensPerS.toFixed(0)} tokens/s, ${out.step_ms.toFixed(1)} ms/step, MFU ${(mfu * 100).toFixed(1)}% of ${peak.gflops.toFixed(1)} GFLOP/s per worker\n`);
      return result.exitCode;
    }));
}
