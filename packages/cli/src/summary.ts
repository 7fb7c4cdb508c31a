/** The closing lines of a run, for people: what the run achieved and where its files are. */
export function printRunSummary(summary: Record<string, unknown>, outDir: string): void {
  const out = process.stdout;
  const n = (v: unknown, digits: number) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
  if (!summary.ok) {
    const f = summary.failure as { rank?: number; host?: string; error?: { code?: string; message?: string; hint?: string } } | undefined;
    out.write(`\nRun failed${f?.rank !== undefined ? ` on worker rank ${f.rank} (${f.host})` : ''}: ${f?.error?.code}: ${f?.error?.message}\n`);
    if (f?.error?.hint) out.write(`  hint: ${f.error.hint}\n`);
    printRestarts(summary);
    const stopped = summary.stopped as { code: string; message: string; hint: string } | undefined;
    if (stopped) out.write(`Not restarted: ${stopped.code}: ${stopped.message}\n  hint: ${stopped.hint}\n`);
    out.write(`Run folder: ${outDir}${typeof summary.exit_code === 'number' ? ` (exit code ${summary.exit_code})` : ''}\n`);
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
  printRestarts(summary);
  if (typeof summary.sample === 'string') out.write(`\n--- sample ---\n${summary.sample}\n--------------\n`);
  out.write(`\nRun folder: ${outDir} (metrics.jsonl, summary.json, model/)\n`);
}

/** One line per restart: who failed, at which step, why, where the run resumed and what it cost. */
function printRestarts(summary: Record<string, unknown>): void {
  const rounds = (summary.rounds as Array<Record<string, unknown>> | undefined) ?? [];
  if (typeof summary.restarts !== 'number' || summary.restarts === 0) return;
  const out = process.stdout;
  out.write(`restarts           ${summary.restarts} of ${String(summary.max_restarts)} (${String(summary.lost_steps)} step(s) trained again)\n`);
  for (const [i, r] of rounds.entries()) {
    const f = r.failure as { rank: number | null; host: string; code: string; message: string } | undefined;
    const next = rounds[i + 1];
    if (!f || !next) continue;
    const who = f.rank === null ? f.host : `rank ${f.rank} (${f.host})`;
    const at = r.last_step === null ? 'before its first step' : `after step ${Number(r.last_step) + 1}`;
    const recovery = typeof r.recovery_ms === 'number' ? `, training again ${(r.recovery_ms / 1000).toFixed(1)} s later` : '';
    out.write(`  round ${String(r.round)}: ${who} failed ${at}: ${f.code}; round ${String(next.round)} resumed at step ${String(next.start_step)} on ${String(next.world)} worker(s), ${String(r.lost_steps ?? 0)} step(s) lost${recovery}\n`);
  }
}
