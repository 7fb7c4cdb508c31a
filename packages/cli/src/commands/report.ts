import { exitCode } from '../action.js';
import { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRunState, reportHtml } from '@trainer/dashboard';

/** `trainer report <run>`: a finished run as one self-contained HTML file (the dashboard's panels, no script). */
export function reportCommand(): Command {
  return new Command('report')
    .description('write a self-contained HTML report of a run (curves, memory, traffic, events) from its metrics.jsonl and summary.json')
    .argument('<run>', 'run folder')
    .option('--out <file>', 'where to write it (default: <run>/report.html)')
    .action(exitCode(async (run: string, o: { out?: string }) => {
      const { state, summary } = await buildRunState(run);
      const out = o.out ?? join(run, 'report.html');
      await writeFile(out, reportHtml(state, summary, run));
      const points = state.sortedPoints().filter((p) => p.loss !== undefined).length;
      process.stdout.write(`report of ${run} (${points} steps, ${state.ranks.size} ranks) written to ${out}\n`);
      return 0;
    }));
}
