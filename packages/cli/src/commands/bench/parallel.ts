import type { Command } from 'commander';
import { meshShape } from '@trainer/engine';
import { checkPipeline, checkTensorParallel, resolveModelConfig } from '@trainer/model';
import { exitCode } from '../../action.js';
import { int, oneOf } from '../../parse.js';
import { BACKENDS } from '../../train-options.js';
import { formatBytes } from '../../format.js';
import { runSynthetic } from './synthetic-run.js';

/**
 * `trainer bench parallel`: every dp x tp x pp layout of N workers that the model allows, side by
 * side on the same global batch: tokens/s, step time, peak TF.js bytes and RSS per worker, the
 * pipeline's measured bubble (idle share of a step) beside the 1F1B ideal (P-1)/(M+P-1), and
 * bytes sent per step.
 */
export function addParallelBench(cmd: Command): void {
  cmd
    .command('parallel')
    .description('dp x tp x pp layouts side by side: tokens/s, step time, peak memory per worker, bubble, bytes sent')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--nodes <n>', 'worker processes', int(1, 64), 4)
    .option('--global-batch <n>', 'sequences per step (all layouts)', int(1), 32)
    .option('--micro-batches <n>', 'micro-batches per step and replica (the pipeline schedule\'s M)', int(1), 8)
    .option('--steps <n>', 'timed steps per layout', int(1), 6)
    .option('--warmup <n>', 'untimed steps first', int(0), 2)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'wasm')
    .option('--json', 'one JSON object per layout')
    .action(exitCode(async (o: { model: string; nodes: number; globalBatch: number; microBatches: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const config = resolveModelConfig(o.model);
      const layouts: { tp: number; pp: number }[] = [];
      for (let tp = 1; tp <= o.nodes; tp *= 2) {
        for (let pp = 1; tp * pp <= o.nodes; pp *= 2) {
          try {
            const { dp } = meshShape(o.nodes, tp, pp);
            if (tp > 1) checkTensorParallel(config, tp);
            if (pp > 1) checkPipeline(config, { stages: pp, stage: 0 });
            if (o.globalBatch % (dp * o.microBatches) === 0) layouts.push({ tp, pp });
          } catch {
            // a layout this model or batch does not allow
          }
        }
      }
      if (!o.json) process.stdout.write(`${o.model}, ${o.nodes} workers, global batch ${o.globalBatch}, ${o.microBatches} micro-batches\nlayout (dp x tp x pp)   tokens/s   step ms   peak TF.js/worker   RSS/worker   bubble (ideal)   sent/step\n`);
      for (const { tp, pp } of layouts) {
        const { dp } = meshShape(o.nodes, tp, pp);
        const result = await runSynthetic({ model: o.model, world: o.nodes, globalBatch: o.globalBatch, microBatches: o.microBatches, steps: o.steps, warmup: o.warmup, backend: o.backend, tp, pp, quiet: o.json });
        if (!result.outcome.ok) return result.exitCode;
        const rs = result.outcome.results;
        const r0 = rs[0];
        const bubbles = rs.map((r) => Number(r.bubble)).filter(Number.isFinite);
        const row = {
          model: o.model, world: o.nodes, dp, tp, pp, micro_batches: o.microBatches,
          tokens_per_s: Number(r0.tokens_per_s), step_ms: Number(r0.step_ms),
          peak_tf_bytes: Math.max(...rs.map((r) => Number(r.peak_tf_bytes))), rss_bytes: Math.max(...rs.map((r) => Number(r.rss_bytes))),
          bubble: bubbles.length ? bubbles.reduce((a, b) => a + b, 0) / bubbles.length : 0,
          bubble_ideal: pp > 1 ? (pp - 1) / (o.microBatches + pp - 1) : 0,
          bytes_sent_per_step: rs.reduce((s, r) => s + Number(r.bytes_sent_per_step), 0) / rs.length,
        };
        process.stdout.write(o.json ? JSON.stringify(row) + '\n'
          : `${`${dp} x ${tp} x ${pp}`.padEnd(22)}${row.tokens_per_s.toFixed(0).padStart(9)}${row.step_ms.toFixed(0).padStart(10)}${formatBytes(row.peak_tf_bytes).padStart(20)}${formatBytes(row.rss_bytes).padStart(13)}   ${(100 * row.bubble).toFixed(0).padStart(3)}% (${(100 * row.bubble_ideal).toFixed(0)}%)${formatBytes(row.bytes_sent_per_step).padStart(14)}\n`);
      }
      return 0;
    }));
}
