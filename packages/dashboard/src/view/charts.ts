/**
 * Hand-written SVG charts: a line chart over steps and a stacked bar chart per rank. They return
 * SVG markup as a string, so the live page (in the browser) and `trainer report` (in Node) draw
 * exactly the same pictures with no chart library and nothing fetched from a CDN.
 */
import { escapeHtml, formatNumber } from './format.js';

export interface Series {
  name: string;
  color: string;
  /** [x, y] pairs, x ascending; non-finite y values are skipped. */
  points: Array<[number, number]>;
  /** Draw a dot on every point (sparse series such as validation). */
  dots?: boolean;
}

export interface LineChartOptions {
  title: string;
  series: Series[];
  width?: number;
  height?: number;
  xLabel?: string;
  /** Formats a y tick (default: 3 significant digits with k/M/G). */
  formatY?: (v: number) => string;
  /** Log-scale y axis (perplexity). */
  logY?: boolean;
  /** Byte values: ticks at round numbers of KiB/MiB/GiB rather than of powers of ten. */
  bytes?: boolean;
}

const PAD = { left: 56, right: 12, top: 40, bottom: 30 };
/** Titles start at the panel's edge, not the plot's: a title of ~65 characters fits the default width. */
const TITLE_X = 8;

/** "Nice" tick values (1, 2, 5 x 10^k) covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 460;
  const H = o.height ?? 220;
  const fmt = o.formatY ?? ((v: number) => formatNumber(v));
  const tf = (y: number) => (o.logY ? Math.log10(y) : y);
  const all = o.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(o.title)}">`
    + `<text x="${TITLE_X}" y="16" class="chart-title">${escapeHtml(o.title)}</text>`;
  if (all.length === 0) {
    return `${head}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="chart-empty">waiting for data</text></svg>`;
  }
  let x0 = Math.min(...all.map((p) => p[0]));
  let x1 = Math.max(...all.map((p) => p[0]));
  if (x1 === x0) {
    // one step so far: put it in the middle
    x0 -= 1;
    x1 += 1;
  }
  let y0 = Math.min(...all.map((p) => tf(p[1])));
  let y1 = Math.max(...all.map((p) => tf(p[1])));
  if (y1 === y0) {
    y0 -= Math.abs(y0) * 0.05 || 0.5;
    y1 += Math.abs(y1) * 0.05 || 0.5;
  }
  const margin = (y1 - y0) * 0.05;
  y0 -= margin;
  y1 += margin;
  // Non-negative figures (loss, bytes, tokens/s) are drawn from 0, so small wiggles look small.
  if (!o.logY && all.every((p) => p[1] >= 0)) y0 = 0;
  const px = (x: number) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (y: number) => H - PAD.bottom - ((tf(y) - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [head];
  // Axes and grid.
  const yTicks = o.logY ? logTicks(y0, y1) : o.bytes ? binaryTicks(y0, y1) : niceTicks(y0, y1, 4);
  for (const t of yTicks) {
    const y = py(t).toFixed(1);
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${y}" dy="0.32em" text-anchor="end" class="tick">${escapeHtml(fmt(t))}</text>`);
  }
  for (const t of niceTicks(x0, x1, 5).filter((v) => Number.isInteger(v))) {
    parts.push(`<text x="${px(t).toFixed(1)}" y="${H - PAD.bottom + 14}" text-anchor="middle" class="tick">${formatNumber(t)}</text>`);
  }
  parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${H - PAD.bottom}" y2="${H - PAD.bottom}" class="axis"/>`);
  if (o.xLabel) parts.push(`<text x="${W - PAD.right}" y="${H - 4}" text-anchor="end" class="tick">${escapeHtml(o.xLabel)}</text>`);
  // Lines, then the legend.
  o.series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
    if (pts.length) {
      const d = pts.map(([x, y], k) => `${k ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8" class="series" data-series="${escapeHtml(s.name)}" data-points="${pts.length}"/>`);
      if (s.dots || pts.length === 1) for (const [x, y] of pts) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.8" fill="${s.color}"/>`);
    }
    const lx = PAD.left + 120 * i;
    parts.push(`<rect x="${lx}" y="25" width="10" height="3" fill="${s.color}"/><text x="${lx + 14}" y="30" class="legend">${escapeHtml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Nice ticks in the largest binary unit (KiB, MiB, GiB) below the top value. */
function binaryTicks(lo: number, hi: number): number[] {
  let unit = 1;
  while (hi / unit >= 1024 && unit < 2 ** 40) unit *= 1024;
  return niceTicks(lo / unit, hi / unit, 4).map((t) => t * unit);
}

function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(v);
    }
  }
  return ticks.length >= 2 ? ticks : [10 ** lo, 10 ** hi];
}

export interface BarSegment {
  name: string;
  color: string;
}

export interface StackedBarsOptions {
  title: string;
  segments: BarSegment[];
  /** One bar per row: a label, a value per segment, and an optional marker (e.g. the peak). */
  rows: Array<{ label: string; values: number[]; marker?: number }>;
  markerName?: string;
  width?: number;
  formatValue?: (v: number) => string;
}

/** Horizontal stacked bars (per-rank memory by category, the peak as a tick mark). */
export function stackedBars(o: StackedBarsOptions): string {
  const W = o.width ?? 460;
  const rowH = 22;
  const H = Math.max(220, PAD.top + Math.max(1, o.rows.length) * rowH + 8);
  const fmt = o.formatValue ?? ((v: number) => formatNumber(v));
  const left = 64;
  const right = 76;
  const max = Math.max(1, ...o.rows.map((r) => Math.max(r.values.reduce((a, b) => a + b, 0), r.marker ?? 0)));
  const sx = (v: number) => (v / max) * (W - left - right);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(o.title)}">`,
    `<text x="${TITLE_X}" y="16" class="chart-title">${escapeHtml(o.title)}</text>`];
  const legend = [...o.segments, ...(o.markerName ? [{ name: o.markerName, color: '#222' }] : [])];
  legend.forEach((s, i) => parts.push(`<rect x="${left + i * 90}" y="23" width="10" height="8" fill="${s.color}"/><text x="${left + i * 90 + 14}" y="30" class="legend">${escapeHtml(s.name)}</text>`));
  if (!o.rows.length) parts.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle" class="chart-empty">waiting for data</text>`);
  o.rows.forEach((r, i) => {
    const y = PAD.top + i * rowH;
    parts.push(`<text x="${left - 6}" y="${y + 8}" dy="0.32em" text-anchor="end" class="tick">${escapeHtml(r.label)}</text>`);
    let x = left;
    r.values.forEach((v, k) => {
      const w = sx(v);
      if (w > 0) parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="16" fill="${o.segments[k].color}"><title>${escapeHtml(o.segments[k].name)}: ${escapeHtml(fmt(v))}</title></rect>`);
      x += w;
    });
    if (r.marker !== undefined && r.marker > 0) {
      const mx = (left + sx(r.marker)).toFixed(1);
      parts.push(`<line x1="${mx}" x2="${mx}" y1="${y - 2}" y2="${y + 18}" stroke="#222" stroke-width="2"><title>${escapeHtml(o.markerName ?? '')}: ${escapeHtml(fmt(r.marker))}</title></line>`);
    }
    const total = Math.max(r.values.reduce((a, b) => a + b, 0), r.marker ?? 0);
    parts.push(`<text x="${W - right + 6}" y="${y + 8}" dy="0.32em" class="tick">${escapeHtml(fmt(total))}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
