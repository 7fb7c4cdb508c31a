/** Formatting for the dashboard and the report (browser-safe). */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Every string from a worker (hosts, messages) goes through this before it reaches markup. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** 3 significant digits with k/M/G suffixes: 1234 -> "1.23k". */
export function formatNumber(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a === 0) return '0';
  if (a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** Bytes in binary units: 1536 -> "1.5 KiB". */
export function formatBytes(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x.toFixed(0) : x.toFixed(x >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatRate(bytesPerS: number | undefined): string {
  return bytesPerS === undefined || !Number.isFinite(bytesPerS) ? 'n/a' : `${formatBytes(bytesPerS)}/s`;
}

/** A bandwidth in GB/s (1e9 bytes/s, nccl-tests' unit): 1.234 -> "1.23 GB/s". */
export function formatGBs(gbs: number | undefined): string {
  return gbs === undefined || !Number.isFinite(gbs) ? 'n/a' : `${formatNumber(gbs)} GB/s`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return 'n/a';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}
