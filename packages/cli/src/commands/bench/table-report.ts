import { formatBytes } from '../estimate-memory.js';

/** One measured row of the optimization table. */
export interface TableRow {
  name: string;
  options: Record<string, unknown>;
  wall_s: number;
  tokens_per_s: number;
  peak_tf_bytes: number;
  rss_bytes: number;
  model_state_bytes: number;
  val_perplexity: number;
  final_loss: number;
}

const pct = (x: number, base: number) => `${x >= base ? '+' : ''}${(((x - base) / base) * 100).toFixed(0)}%`;

/** The table as Markdown, with the machine, the command and a reading derived from the numbers. */
export function optimizationsMarkdown(rows: readonly TableRow[], machine: Record<string, unknown>, command: string): string {
  const base = rows[0];
  const lines = [
    '# The optimization table, measured',
    '',
    `Produced by \`${command}\` (\`pnpm trainer bench table\`), ${new Date().toISOString().slice(0, 10)}.`,
    `Machine: ${String(machine.cpu)}, ${String(machine.cores)} cores, ${String(machine.memory)}; Node ${String(machine.node)}; backend ${String(machine.backend)}.`,
    'Every row trains the same model on the same corpus, global batch and number of steps; memory figures are the largest over the workers.',
    '',
    '![tokens/s and memory per row](optimizations.svg)',
    '',
    '| configuration | wall time | tokens/s | peak TF.js / worker | RSS / worker | model state / worker | val. perplexity |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${r.wall_s.toFixed(1)} s | ${r.tokens_per_s.toFixed(0)} | ${formatBytes(r.peak_tf_bytes)} | ${formatBytes(r.rss_bytes)} | ${formatBytes(r.model_state_bytes)} | ${r.val_perplexity.toFixed(2)} |`),
    '',
    '## Reading (relative to the baseline row, same run)',
    '',
    ...rows.slice(1).map((r) => `- **${r.name}**: tokens/s ${pct(r.tokens_per_s, base.tokens_per_s)}, peak TF.js memory ${pct(r.peak_tf_bytes, base.peak_tf_bytes)}, ` +
      `model state ${pct(r.model_state_bytes, base.model_state_bytes)}, validation perplexity ${r.val_perplexity.toFixed(2)} vs ${base.val_perplexity.toFixed(2)} (${pct(r.val_perplexity, base.val_perplexity)}).`),
    '',
    'What the numbers mean on this machine (CPU, WebAssembly backend, workers sharing few cores):',
    '',
    '- Compute is fp32 everywhere: TF.js has no 16-bit float kernels on any backend. Mixed precision halves the bytes of working parameters, gradients and',
    '  traffic (the fp32 master and AdamW state remain, 2+2+12 bytes per parameter); the 16-bit encode/decode costs CPU time that a GPU would not spend.',
    '- Activation checkpointing keeps only block inputs and runs each block forward again in backward: lower peak memory for about one extra forward.',
    '- Tensor and pipeline parallelism split a model that would not fit; on a few CPU cores with a small model they add communication (two all-reduces',
    '  per block, or the pipeline bubble) that data parallelism does not pay, so they cost throughput here. Their point is the memory per worker.',
    '- ZeRO stage 3 partitions parameters, gradients and optimizer state (model state per worker falls with the number of workers) at about 1.6x the traffic.',
    '- Perplexities differ only by rounding (16-bit) and summation order: every technique trains the same model on the same data.',
    '',
  ];
  return lines.join('\n');
}

/** Two bar charts side by side: tokens/s, and model state / peak memory per worker. */
export function optimizationsSvg(rows: readonly TableRow[]): string {
  const barH = 22;
  const gap = 8;
  const labelW = 300;
  const chartW = 260;
  const top = 40;
  const height = top + rows.length * (barH + gap) + 20;
  const width = labelW + 2 * chartW + 80;
  const maxTok = Math.max(...rows.map((r) => r.tokens_per_s));
  const maxMem = Math.max(...rows.map((r) => Math.max(r.peak_tf_bytes, r.model_state_bytes)));
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${labelW}" y="20" font-weight="bold">tokens/s</text>`,
    `<text x="${labelW + chartW + 40}" y="20" font-weight="bold">per worker: model state (dark), peak TF.js (light)</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    const tw = (r.tokens_per_s / maxTok) * chartW;
    const mx = labelW + chartW + 40;
    parts.push(
      `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(r.name)}</text>`,
      `<rect x="${labelW}" y="${y}" width="${tw.toFixed(1)}" height="${barH}" fill="#4477aa"/>`,
      `<text x="${labelW + tw + 4}" y="${y + 15}">${r.tokens_per_s.toFixed(0)}</text>`,
      `<rect x="${mx}" y="${y}" width="${((r.peak_tf_bytes / maxMem) * chartW).toFixed(1)}" height="${barH}" fill="#ccddee"/>`,
      `<rect x="${mx}" y="${y + 5}" width="${((r.model_state_bytes / maxMem) * chartW).toFixed(1)}" height="${barH - 10}" fill="#223355"/>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
