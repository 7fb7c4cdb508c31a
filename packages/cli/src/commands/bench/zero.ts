import type { Command } from 'commander';
import { exitCode } from '../../action.js';
import { int, oneOf } from '../../parse.js';
import { BACKENDS } from '../../train-options.js';
import { estimateModelState } from '@trainer/engine';
import { resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import { formatBytes } from '../../format.js';
import { kernelsOf } from '../../memory-check.js';
import { runSynthetic } from './synthetic-run.js';

/** `trainer bench zero`: ZeRO stages side by side, measured and predicted model state, traffic. */
export function addZeroBench(cmd: Command): void {
  cmd
    .command('zero')
    .description('ZeRO stages 0-3 side by side: step time, tokens/s, model-state bytes per worker (measured and predicted), bytes sent per step')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--nodes <n>', 'worker processes', int(1, 64), 4)
    .option('--batch <n>', 'sequences per worker per step', int(1), 8)
    .option('--steps <n>', 'timed steps per stage', int(1), 10)
    .option('--warmup <n>', 'untimed steps first', int(0), 2)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'wasm')
    .option('--json', 'one JSON object per stage')
    .action(exitCode(async (o: { model: string; nodes: number; batch: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const config = resolveModelConfig(o.model);
      const units = unitComputeCosts(config, kernelsOf(o.backend, 'auto', false));
      const segments = segmentSpecs(config);
      const rows = [];
      if (!o.json) process.stdout.write(`${o.model}, ${o.nodes} workers, batch ${o.batch} per worker\nstage   step ms   tokens/s   model state (measured / predicted)   sent/step\n`);
      for (const stage of [0, 1, 2, 3] as const) {
        const result = await runSynthetic({ model: o.model, world: o.nodes, globalBatch: o.batch * o.nodes, steps: o.steps, warmup: o.warmup, backend: o.backend, zero: stage, quiet: o.json });
        if (!result.outcome.ok) return result.exitCode;
        const r = result.outcome.results[0];
        const predicted = estimateModelState(units, segments, stage, o.nodes, 0);
        const row = {
          model: o.model, world: o.nodes, zero: stage, step_ms: Number(r.step_ms), tokens_per_s: Number(r.tokens_per_s),
          model_state_bytes: Number(r.model_state_bytes), predicted_model_state_bytes: predicted.total, zero_paper_bytes: predicted.zeroPaper,
          bytes_sent_per_step: Number(r.bytes_sent_per_step),
        };
        rows.push(row);
        process.stdout.write(o.json ? JSON.stringify(row) + '\n'
          : `${String(stage).padEnd(8)}${row.step_ms.toFixed(0).padStart(7)}${row.tokens_per_s.toFixed(0).padStart(11)}   ${formatBytes(row.model_state_bytes).padStart(12)} / ${formatBytes(row.predicted_model_state_bytes).padEnd(12)}        ${formatBytes(row.bytes_sent_per_step)}\n`);
      }
      return 0;
    }));
}
