/**
 * The dashboard's content as HTML, from a RunState: figures, curves, per-rank memory and traffic,
 * the parallel layout, checkpoints, restarts and failures. The live page re-renders it on every
 * update; `trainer report` writes it once into a self-contained file. Browser-safe.
 */
import { lineChart, stackedBars } from './charts.js';
import { escapeHtml, formatBytes, formatDuration, formatGBs, formatNumber, formatRate, formatTime } from './format.js';
import type { RunState, StepPoint } from './run-state.js';

const COLORS = { train: '#1f77b4', val: '#d62728', tokens: '#2ca02c', bytes: '#9467bd', rate: '#ff7f0e', busbw: '#17becf', busbwMin: '#8c564b', params: '#4e79a7', grads: '#f28e2b', optimizer: '#59a14f' } as const;

export function renderPanels(s: RunState, now: number): string {
  return [header(s, now), tiles(s), charts(s), memory(s), layout(s), events(s)].join('\n');
}

function header(s: RunState, now: number): string {
  const info = s.info;
  const last = s.latest();
  const done = last ? last.step + 1 : 0;
  const total = info?.steps ?? 0;
  const elapsed = info ? (s.status.state === 'running' ? now : s.lastUpdate || now) - info.startedAt : undefined;
  const eta = info && done > 0 && s.status.state === 'running' && elapsed !== undefined ? (elapsed / done) * (total - done) : undefined;
  const title = info ? `${info.kind === 'finetune' ? 'fine-tuning' : 'training'} ${info.model} on ${info.world} worker${info.world === 1 ? '' : 's'}` : 'waiting for the run';
  const parallel = info ? `dp ${info.dp} x tp ${info.tp} x pp ${info.pp}, ZeRO ${info.zero}, ${info.globalBatch} x ${info.seqLen} tokens per step` : '';
  return `<header class="run-header">
  <h1>${escapeHtml(title)}</h1>
  <span class="status status-${s.status.state}" id="status">${escapeHtml(s.status.state)}</span>
  <div class="sub">${escapeHtml(parallel)}</div>
  <div class="sub" id="progress" data-step="${last ? last.step : -1}">step ${done} / ${total}${elapsed !== undefined ? ` | elapsed ${formatDuration(elapsed)}` : ''}${eta !== undefined ? ` | ETA ${formatDuration(eta)}` : ''}</div>
  ${s.status.message ? `<div class="status-message">${escapeHtml(s.status.message)}</div>` : ''}
</header>`;
}

function tile(label: string, value: string, id: string): string {
  return `<div class="tile"><div class="tile-label">${escapeHtml(label)}</div><div class="tile-value" id="${id}">${escapeHtml(value)}</div></div>`;
}

function tiles(s: RunState): string {
  const last = s.latest();
  const val = s.latestValidation();
  const ranks = s.sortedRanks();
  const rates = ranks.map((r) => r.sendRate).filter((r): r is number => r !== undefined);
  const busbws = ranks.map((r) => r.busbwGBs).filter((r): r is number => r !== undefined);
  const maxState = ranks.length ? Math.max(...ranks.map((r) => r.modelStateBytes)) : undefined;
  return `<section class="tiles">
  ${tile('loss', formatNumber(last?.loss), 'tile-loss')}
  ${tile('val perplexity', val ? `${formatNumber(val.valPerplexity)} (loss ${formatNumber(val.valLoss)})` : 'n/a', 'tile-val')}
  ${tile('tokens/s', formatNumber(last?.tokensPerS), 'tile-tokens')}
  ${tile('step time', last?.stepMs !== undefined ? `${formatNumber(last.stepMs)} ms` : 'n/a', 'tile-step')}
  ${tile('all-reduce bus bw (mean rank)', busbws.length ? formatGBs(busbws.reduce((a, b) => a + b, 0) / busbws.length) : 'n/a', 'tile-busbw')}
  ${tile('send rate per rank (whole step)', rates.length ? formatRate(rates.reduce((a, b) => a + b, 0) / rates.length) : 'n/a', 'tile-rate')}
  ${tile('model state (max rank)', formatBytes(maxState), 'tile-state')}
  ${tile('checkpoints / restarts', `${s.events.filter((e) => e.kind === 'checkpoint').length} / ${s.events.filter((e) => e.kind === 'restart').length}`, 'tile-events')}
</section>`;
}

function series(points: StepPoint[], pick: (p: StepPoint) => number | undefined): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const p of points) {
    const v = pick(p);
    if (v !== undefined) out.push([p.step + 1, v]);
  }
  return out;
}

function charts(s: RunState): string {
  const pts = s.sortedPoints();
  const world = s.info?.world ?? 1;
  const loss = lineChart({
    title: 'loss', xLabel: 'step',
    series: [
      { name: 'train', color: COLORS.train, points: series(pts, (p) => p.loss) },
      { name: 'validation', color: COLORS.val, points: series(pts, (p) => p.valLoss), dots: true },
    ],
  });
  const ppl = lineChart({ title: 'validation perplexity', xLabel: 'step', logY: true, series: [{ name: 'perplexity', color: COLORS.val, points: series(pts, (p) => p.valPerplexity), dots: true }] });
  const tokens = lineChart({ title: 'throughput (tokens/s)', xLabel: 'step', series: [{ name: 'tokens/s', color: COLORS.tokens, points: series(pts, (p) => p.tokensPerS) }] });
  const bytes = lineChart({
    title: 'bytes sent per step (all ranks)', xLabel: 'step', formatY: (v) => formatBytes(v), bytes: true,
    // only steps every rank has reported (the newest is often still partial)
    series: [{ name: 'bytes/step', color: COLORS.bytes, points: series(pts, (p) => (p.ranksReported >= world ? p.bytesSent : undefined)) }],
  });
  // Measured by the workers inside their collectives: bus bytes over the time collectives were in flight.
  const busbw = lineChart({
    title: 'all-reduce bus bandwidth per rank (measured inside collectives)', xLabel: 'step', formatY: (v) => formatGBs(v),
    series: [
      { name: 'mean over ranks', color: COLORS.busbw, points: series(pts, (p) => (p.busbw && p.ranksReported >= world ? p.busbw.sum / p.busbw.ranks : undefined)) },
      { name: 'slowest rank', color: COLORS.busbwMin, points: series(pts, (p) => (p.busbw && p.ranksReported >= world ? p.busbw.min : undefined)) },
    ],
  });
  // An average over the whole step, compute included: far below the bandwidth of the collectives themselves.
  const rate = lineChart({
    title: 'send rate per rank (bytes sent / whole step time)', xLabel: 'step', formatY: (v) => formatRate(v), bytes: true,
    series: [{ name: 'mean over ranks', color: COLORS.rate, points: series(pts, (p) => (p.stepMs && p.ranksReported >= world ? (p.bytesSent / p.ranksReported / p.stepMs) * 1000 : undefined)) }],
  });
  const ranks = s.sortedRanks();
  const bars = stackedBars({
    title: 'memory per rank (model state; peak of the backend)', formatValue: formatBytes, markerName: 'peak',
    segments: [{ name: 'parameters', color: COLORS.params }, { name: 'gradients', color: COLORS.grads }, { name: 'optimizer', color: COLORS.optimizer }],
    rows: ranks.map((r) => ({ label: `rank ${r.rank}`, values: [r.paramsBytes, r.gradsBytes, r.optimizerBytes], marker: r.peakBytes })),
  });
  return `<section class="charts">
  <div class="panel" id="chart-loss" data-points="${series(pts, (p) => p.loss).length}">${loss}</div>
  <div class="panel" id="chart-ppl" data-points="${series(pts, (p) => p.valPerplexity).length}">${ppl}</div>
  <div class="panel" id="chart-tokens">${tokens}</div>
  <div class="panel" id="chart-memory">${bars}</div>
  <div class="panel" id="chart-bytes">${bytes}</div>
  <div class="panel" id="chart-busbw" data-points="${series(pts, (p) => (p.busbw && p.ranksReported >= world ? p.busbw.min : undefined)).length}">${busbw}</div>
  <div class="panel" id="chart-rate">${rate}</div>
</section>`;
}

/** A figure only some runs report (older workers send no host-device counts). */
function optionalBytes(b: number | undefined): string {
  return b === undefined ? 'n/a' : formatBytes(b);
}

function memory(s: RunState): string {
  const rows = s.sortedRanks().map((r) => `<tr><td>${r.rank}</td><td>${r.step + 1}</td><td>${formatBytes(r.paramsBytes)}</td><td>${formatBytes(r.gradsBytes)}</td><td>${formatBytes(r.optimizerBytes)}</td><td>${formatBytes(r.modelStateBytes)}</td><td>${formatBytes(r.peakBytes)}</td><td>${formatBytes(r.bytesSentStep)}</td><td>${formatRate(r.sendRate)}</td><td>${formatBytes(r.bytesSentTotal)}</td><td>${optionalBytes(r.hostToDeviceStep)}</td><td>${optionalBytes(r.deviceToHostStep)}</td><td>${r.collectiveMsStep === undefined ? 'n/a' : `${formatNumber(r.collectiveMsStep)} ms`}</td><td>${formatGBs(r.busbwGBs)}</td></tr>`);
  return `<section class="panel"><h2>ranks: memory and traffic</h2><table id="ranks"><thead><tr><th>rank</th><th>step</th><th>parameters</th><th>gradients</th><th>optimizer</th><th>model state</th><th>peak (backend)</th><th>sent/step</th><th>send rate (whole step)</th><th>sent total</th><th>host&rarr;device/step</th><th>device&rarr;host/step</th><th>in collectives/step</th><th>all-reduce bus bw</th></tr></thead>
  <tbody>${rows.join('') || '<tr><td colspan="14">no report yet</td></tr>'}</tbody></table></section>`;
}

function layout(s: RunState): string {
  const l = s.layout;
  if (!l) {
    const i = s.info;
    const shape = i ? ` (dp ${i.dp} x tp ${i.tp} x pp ${i.pp}, ZeRO ${i.zero})` : '';
    // a report is rebuilt from files that do not record hosts and pids
    const why = s.status.state === 'waiting' ? 'ranks are not assigned yet' : 'the placement of ranks (hosts, devices) was not recorded';
    return `<section class="layout panel"><h2>parallel layout${escapeHtml(shape)}</h2><p>${why}</p></section>`;
  }
  const axes = Object.keys(l.axes);
  const head = `<tr><th>rank</th><th>host</th><th>pid</th><th>device</th>${axes.map((a) => `<th>${escapeHtml(a)}</th>`).join('')}<th>holds</th></tr>`;
  const rows = l.ranks.map((r) => `<tr><td>${r.rank}</td><td>${escapeHtml(r.host)}</td><td>${r.pid}</td><td>${escapeHtml(r.device)}</td>${axes.map((a) => `<td>${r.coords[a] ?? ''}</td>`).join('')}<td>${r.holds.map(escapeHtml).join('<br>')}</td></tr>`);
  const shape = axes.map((a) => `${a} ${l.axes[a]}`).join(' x ');
  return `<section class="layout panel"><h2>parallel layout (${escapeHtml(shape)})</h2><table id="layout"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></section>`;
}

function events(s: RunState): string {
  const rows = [...s.events].reverse().map((e) => `<tr class="event-${escapeHtml(e.kind)}"><td>${formatTime(e.time)}</td><td>${escapeHtml(e.kind)}</td><td>${e.step === undefined ? '' : e.step}</td><td>${escapeHtml(e.title)}</td><td>${escapeHtml(e.detail ?? '')}</td></tr>`);
  return `<section class="events panel"><h2>checkpoints, restarts and failures</h2><table id="events"><thead><tr><th>time (UTC)</th><th>kind</th><th>step</th><th>what</th><th>detail / cause</th></tr></thead>
  <tbody>${rows.join('') || '<tr><td colspan="5">none so far</td></tr>'}</tbody></table></section>`;
}

/** The page's stylesheet (served as /assets/style.css, inlined into reports). */
export const DASHBOARD_CSS = `
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 12px 16px; max-width: 1000px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0; display: inline-block; }
h2 { font-size: 14px; margin: 0 0 6px; }
.run-header { margin-bottom: 10px; }
.sub { color: #555; }
.status { display: inline-block; margin-left: 10px; padding: 1px 8px; border-radius: 9px; font-weight: 600; color: #fff; background: #888; vertical-align: 3px; }
.status-running { background: #2a7ab0; } .status-finished { background: #2e8b57; } .status-failed { background: #c0392b; }
.status-message { margin-top: 4px; color: #c0392b; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 10px; }
.tile { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px; min-width: 110px; }
.tile-label { color: #666; font-size: 11px; } .tile-value { font-size: 16px; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(470px, 1fr)); gap: 8px; margin-bottom: 8px; }
.panel { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px; overflow-x: auto; margin-bottom: 8px; }
.chart { max-width: 100%; height: auto; }
.chart-title { font-size: 12px; font-weight: 600; fill: #333; }
.chart-empty { fill: #999; font-size: 12px; }
.tick, .legend { font-size: 10px; fill: #555; }
.grid { stroke: #eee; } .axis { stroke: #999; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
th { color: #555; font-weight: 600; }
.event-failure td, .event-checkpoint-failed td { color: #c0392b; }
.event-restart td { color: #b9770e; }
footer { color: #888; font-size: 11px; margin-top: 8px; }
`;
