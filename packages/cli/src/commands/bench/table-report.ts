import { formatBytes } from '../../format.js';

/** One measured row of the optimization table. */
export interface TableRow {
  name: string;
  options: Record<string, unknown>;
  wall_s: number;
  tokens_per_s: number;
  peak_tf_bytes: number;
  rss_bytes: number;
  model_state_bytes: number;
  /** The most any worker sent per step (step average). */
  bytes_sent_per_step: number;
  val_loss: number;
  val_perplexity: number;
  final_loss: number;
}

const pct = (x: number, base: number) => `${x >= base ? '+' : ''}${(((x - base) / base) * 100).toFixed(0)}%`;
/** The same with two decimals, for figures that must stay within 1%. */
const pctFine = (x: number, base: number) => `${x >= base ? '+' : ''}${(((x - base) / base) * 100).toFixed(2)}%`;

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
    '| configuration | wall time | tokens/s | peak TF.js / worker | RSS / worker | model state / worker | sent / step / worker | val. loss | val. perplexity |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${r.wall_s.toFixed(1)} s | ${r.tokens_per_s.toFixed(0)} | ${formatBytes(r.peak_tf_bytes)} | ${formatBytes(r.rss_bytes)} | ${formatBytes(r.model_state_bytes)} | ${formatBytes(r.bytes_sent_per_step)} | ${r.val_loss.toFixed(4)} | ${r.val_perplexity.toFixed(2)} |`),
    '',
    '## Reading (relative to the baseline row, same run)',
    '',
    ...rows.slice(1).map((r) => `- **${r.name}**: tokens/s ${pct(r.tokens_per_s, base.tokens_per_s)}, peak TF.js memory ${pct(r.peak_tf_bytes, base.peak_tf_bytes)}, ` +
      `model state ${pct(r.model_state_bytes, base.model_state_bytes)}, bytes sent per step ${pct(r.bytes_sent_per_step, base.bytes_sent_per_step)}, ` +
      `validation loss ${r.val_loss.toFixed(4)} vs ${base.val_loss.toFixed(4)} (${pctFine(r.val_loss, base.val_loss)}), perplexity ${r.val_perplexity.toFixed(2)} vs ${base.val_perplexity.toFixed(2)}.`),
    '',
    'What the numbers mean on this machine (CPU, WebAssembly backend, workers sharing few cores):',
    '',
    '- Compute is fp32 everywhere: TF.js has no 16-bit float kernels on any backend. Mixed precision keeps the working parameters and',
    '  gradients in 16 bits and sends them so (the bytes sent per step halve), with an fp32 master copy and fp32 AdamW state. Model state',
    '  does not shrink without ZeRO: the ZeRO paper counts 16 bytes per parameter both ways (4+4+8 for fp32, 2+2+12 for mixed precision),',
    '  and on this backend the fp32 compute copy the kernels need stays, plus an fp32 bucket for reductions; partitioning (ZeRO, the last',
    '  row) is what cuts it. The 16-bit encode/decode costs CPU time that a GPU with 16-bit kernels would not spend.',
    '- Activation checkpointing keeps only block inputs and runs each block forward again in backward: lower peak memory for about one extra forward.',
    '- Tensor and pipeline parallelism split a model that would not fit one device; their point is the memory per worker. Tensor parallelism adds',
    '  two all-reduces of activations per block each way, which data parallelism does not pay, so it costs throughput on a few CPU cores.',
    '  Pipeline parallelism sends only the activations at stage boundaries and all-reduces each stage\'s gradients over a smaller data-parallel',
    '  group (compare the bytes sent); its cost is the bubble, (P-1)/(M+P-1) of the time at P stages and M micro-batches.',
    '- ZeRO stage 3 partitions parameters, gradients and optimizer state (model state per worker falls with the number of workers) at 1.5x the traffic (parameters gathered for forward and again for backward).',
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
