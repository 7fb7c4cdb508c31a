import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { escapeHtml, formatTime } from './view/format.js';
import { DASHBOARD_CSS, renderPanels } from './view/panels.js';
import { RunState, type MetricValue, type RunInfo } from './view/run-state.js';

/**
 * `trainer report <run>`: a finished run as one self-contained HTML file (inline CSS and SVG, no
 * script, nothing fetched), drawn by the same panels as the live dashboard. The state is rebuilt
 * from <run>/metrics.jsonl (every rank's per-step records) and <run>/summary.json (the outcome).
 */
export async function buildRunState(runDir: string): Promise<{ state: RunState; summary: Record<string, unknown> }> {
  const summary = await readJson(join(runDir, 'summary.json'));
  let text: string;
  try {
    text = await readFile(join(runDir, 'metrics.jsonl'), 'utf8');
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_REPORT_INPUT', `${runDir} has no readable metrics.jsonl`, { cause: err, hint: 'pass a run folder written by trainer launch, coordinator or finetune' });
  }
  const records: Array<{ time: number; rank: number; record: Record<string, MetricValue> }> = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      throw new TrainerError('TRAINER_ERR_REPORT_INPUT', `${runDir}/metrics.jsonl line ${i + 1} is not JSON`, { hint: 'the file was truncated or edited; the lines before it are intact' });
    }
    const { time, rank, ...record } = o as Record<string, unknown>;
    if (typeof rank !== 'number') throw new TrainerError('TRAINER_ERR_REPORT_INPUT', `${runDir}/metrics.jsonl line ${i + 1} has no rank`, { hint: 'this is not a trainer metrics file' });
    records.push({ time: typeof time === 'string' ? Date.parse(time) : 0, rank, record: record as Record<string, MetricValue> });
  });
  const state = new RunState();
  const n = (k: string, d: number) => (typeof summary[k] === 'number' ? (summary[k] as number) : d);
  const world = n('world', 1 + Math.max(0, ...records.map((r) => r.rank)));
  const tp = n('tp', 1);
  const info: RunInfo = {
    kind: typeof summary.kind === 'string' ? summary.kind : 'train', model: typeof summary.model === 'string' ? summary.model : 'model',
    world, steps: n('steps', records.length ? 1 + Math.max(...records.map((r) => Number(r.record.step ?? 0))) : 0),
    globalBatch: n('global_batch', 0), seqLen: n('seq_len', 0), dp: world / tp, tp, pp: 1, zero: n('zero', 0),
    startedAt: records.length ? records[0].time : 0,
  };
  state.apply({ kind: 'info', info });
  for (const r of records) state.apply({ kind: 'metrics', rank: r.rank, time: r.time, record: r.record });
  const checkpoints = Array.isArray(summary.checkpoints) ? (summary.checkpoints as Array<Record<string, unknown>>) : [];
  for (const c of checkpoints) {
    state.apply({ kind: 'event', event: { time: typeof c.time === 'number' ? c.time : state.lastUpdate, kind: 'checkpoint', step: typeof c.step === 'number' ? c.step : undefined, title: `checkpoint ${String(c.name ?? c.step)}` } });
  }
  if (summary.ok === false) {
    const f = summary.failure as { rank?: number; host?: string; error?: { code?: string; message?: string } } | undefined;
    const message = `${f?.error?.code ?? 'failed'}: ${f?.error?.message ?? ''}`;
    state.apply({ kind: 'event', event: { time: state.lastUpdate, kind: 'failure', title: f?.rank === undefined ? `failure (${f?.host ?? 'launcher'})` : `rank ${f.rank} (${f.host}) failed`, detail: message } });
    state.apply({ kind: 'status', status: { state: 'failed', message } });
  } else {
    state.apply({ kind: 'status', status: { state: 'finished' } });
  }
  return { state, summary };
}

export function reportHtml(state: RunState, summary: Record<string, unknown>, runDir: string): string {
  const sample = typeof summary.sample === 'string' ? `<section class="panel"><h2>sample</h2><pre>${escapeHtml(summary.sample)}</pre></section>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainer report: ${escapeHtml(runDir)}</title>
<style>${DASHBOARD_CSS}</style>
</head>
<body>
${renderPanels(state, state.lastUpdate)}
${sample}
<footer>trainer report of ${escapeHtml(runDir)}, written ${formatTime(Date.now())} UTC from metrics.jsonl and summary.json</footer>
</body>
</html>
`;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_REPORT_INPUT', `cannot read ${path}`, { cause: err, hint: 'pass a finished run folder (it holds summary.json and metrics.jsonl)' });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new TrainerError('TRAINER_ERR_REPORT_INPUT', `${path} is not a JSON object`, { hint: 'the run did not finish writing it; re-run or pass another run folder' });
}
