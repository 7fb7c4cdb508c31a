import type { Command } from 'commander';
import { cpus, totalmem } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitCode } from '../../action.js';
import { int, oneOf } from '../../parse.js';
import { BACKENDS } from '../../train-options.js';
import { formatBytes } from '../../format.js';
import { runSynthetic, type SyntheticRunOptions } from './synthetic-run.js';
import { optimizationsMarkdown, optimizationsSvg, type TableRow } from './table-report.js';

/**
 * `trainer bench table`: the optimization table, measured. One model, corpus, global batch and
 * number of steps; one row per technique (and all together): wall time, tokens/s, peak memory
 * per worker (TF.js and RSS), model state per worker, bytes sent per step per worker, validation
 * loss and perplexity at the end. Writes
 * docs/OPTIMIZATIONS.md (table, machine, command, reading), the raw JSON and an SVG chart.
 */
export const TABLE_ROWS: { name: string; options: Partial<SyntheticRunOptions> }[] = [
  { name: 'baseline (data parallel, fp32)', options: {} },
  { name: 'mixed precision (bf16)', options: { precision: 'bf16' } },
  { name: 'mixed precision (fp16)', options: { precision: 'fp16' } },
  { name: 'activation checkpointing', options: { activationCheckpointing: true } },
  { name: 'tensor parallel (tp 2)', options: { tp: 2 } },
  { name: 'pipeline parallel (pp 2)', options: { pp: 2, microBatches: 4 } },
  { name: 'ZeRO stage 3', options: { zero: 3 } },
  { name: 'all: bf16 + checkpointing + tp 2 + ZeRO-3', options: { precision: 'bf16', activationCheckpointing: true, tp: 2, zero: 3 } },
];

export function addTableBench(cmd: Command): void {
  cmd
    .command('table')
    .description('the optimization table, measured: baseline, mixed precision, activation checkpointing, TP, PP, ZeRO-3, all together')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--nodes <n>', 'worker processes', int(2, 64), 4)
    .option('--data <source>', 'corpus', 'moby-dick')
    .option('--steps <n>', 'optimizer steps per row', int(1), 80)
    .option('--global-batch <n>', 'sequences per step', int(1), 16)
    .option('--lr <x>', 'peak learning rate', Number, 2e-3)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--out <dir>', 'where OPTIMIZATIONS.md, optimizations.json and optimizations.svg go', 'docs')
    .option('--json', 'one JSON object per row on stdout')
    .action(exitCode(async (o: { model: string; nodes: number; data: string; steps: number; globalBatch: number; lr: number; backend: (typeof BACKENDS)[number]; out: string; json?: boolean }) => {
      const rows: TableRow[] = [];
      for (const row of TABLE_ROWS) {
        const started = performance.now();
        const result = await runSynthetic({
          model: o.model, world: o.nodes, globalBatch: o.globalBatch, steps: o.steps, warmup: 0, backend: o.backend,
          data: o.data, lr: o.lr, quiet: true, ...row.options,
        });
        const wallS = (performance.now() - started) / 1000;
        if (!result.outcome.ok) return result.exitCode;
        const rs = result.outcome.results;
        const r: TableRow = {
          name: row.name, options: row.options, wall_s: wallS, tokens_per_s: Number(rs[0].tokens_per_s),
          peak_tf_bytes: Math.max(...rs.map((x) => Number(x.peak_tf_bytes))), rss_bytes: Math.max(...rs.map((x) => Number(x.rss_bytes))),
          model_state_bytes: Math.max(...rs.map((x) => Number(x.model_state_bytes))),
          bytes_sent_per_step: Math.max(...rs.map((x) => Number(x.bytes_sent_per_step))),
          val_loss: Number(rs[0].val_loss), val_perplexity: Number(rs[0].val_perplexity), final_loss: Number(rs[0].final_loss),
        };
        rows.push(r);
        process.stdout.write(o.json ? JSON.stringify(r) + '\n'
          : `${r.name.padEnd(44)} ${r.wall_s.toFixed(1).padStart(7)} s ${r.tokens_per_s.toFixed(0).padStart(7)} tok/s  peak ${formatBytes(r.peak_tf_bytes).padStart(10)}  RSS ${formatBytes(r.rss_bytes).padStart(10)}  state ${formatBytes(r.model_state_bytes).padStart(10)}  sent/step ${formatBytes(r.bytes_sent_per_step).padStart(10)}  ppl ${r.val_perplexity.toFixed(2)}\n`);
      }
      const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memory: formatBytes(totalmem()), node: process.version, backend: o.backend };
      const command = `trainer bench table --model ${o.model} --nodes ${o.nodes} --data ${o.data} --steps ${o.steps} --global-batch ${o.globalBatch} --lr ${o.lr} --backend ${o.backend}`;
      await mkdir(o.out, { recursive: true });
      await writeFile(join(o.out, 'optimizations.json'), JSON.stringify({ machine, command, date: new Date().toISOString(), rows }, null, 2) + '\n');
      await writeFile(join(o.out, 'optimizations.svg'), optimizationsSvg(rows));
      await writeFile(join(o.out, 'OPTIMIZATIONS.md'), optimizationsMarkdown(rows, machine, command));
      if (!o.json) process.stdout.write(`wrote ${join(o.out, 'OPTIMIZATIONS.md')}, optimizations.json, optimizations.svg\n`);
      return 0;
    }));
}
