/** The closing lines of a run, for people: what the run achieved and where its files are. */
export function printRunSummary(summary: Record<string, unknown>, outDir: string): void {
  const out = process.stdout;
  const n = (v: unknown, digits: number) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
  if (!summary.ok) {
    const f = summary.failure as { rank?: number; host?: string; error?: { code?: string; message?: string; hint?: string } } | undefined;
    out.write(`\nRun failed${f?.rank !== undefined ? ` on worker rank ${f.rank} (${f.host})` : ''}: ${f?.error?.code}: ${f?.error?.message}\n`);
    if (f?.error?.hint) out.write(`  hint: ${f.error.hint}\n`);
    out.write(`Run folder: ${outDir}\n`);
    return;
  }
  const losses = (summary.losses as number[] | undefined) ?? [];
  out.write('\n=== run summary ===\n');
  out.write(`workers            ${String(summary.world)} (${String(summary.backend)} backend)\n`);
  out.write(`steps              ${String(summary.steps)}\n`);
  if (losses.length) out.write(`training loss      ${n(losses[0], 4)} -> ${n(losses[losses.length - 1], 4)}\n`);
  out.write(`validation loss    ${n(summary.val_loss, 4)} (perplexity ${n(summary.val_perplexity, 2)})\n`);
  out.write(`throughput         ${n(summary.tokens_per_s, 0)} tokens/s (${n(summary.step_ms, 0)} ms/step)\n`);
  out.write(`wall time          ${n(summary.wall_s, 1)} s\n`);
  if (typeof summary.sample === 'string') out.write(`\n--- sample ---\n${summary.sample}\n--------------\n`);
  out.write(`\nRun folder: ${outDir} (metrics.jsonl, summary.json, model/)\n`);
}
