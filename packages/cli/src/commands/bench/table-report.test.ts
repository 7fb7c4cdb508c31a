import { describe, expect, it } from 'vitest';
import { optimizationsMarkdown, optimizationsSvg, type TableRow } from './table-report.js';

const row = (name: string, over: Partial<TableRow>): TableRow => ({
  name, options: {}, wall_s: 10, tokens_per_s: 1000, peak_tf_bytes: 8 * 2 ** 20, rss_bytes: 200 * 2 ** 20,
  model_state_bytes: 16 * 2 ** 20, bytes_sent_per_step: 4 * 2 ** 20, val_loss: 6, val_perplexity: Math.exp(6), final_loss: 6.1, ...over,
});

describe('the optimization table report', () => {
  const rows = [
    row('baseline (data parallel, fp32)', {}),
    row('mixed precision (bf16)', { tokens_per_s: 750, bytes_sent_per_step: 2 * 2 ** 20, val_loss: 6.03, val_perplexity: Math.exp(6.03) }),
  ];
  const md = optimizationsMarkdown(rows, { cpu: 'test cpu', cores: 2, memory: '1 GiB', node: 'v20', backend: 'wasm' }, 'trainer bench table --steps 80');

  it('tabulates every row with its measured figures and the command that produced them', () => {
    expect(md).toContain('`trainer bench table --steps 80`');
    expect(md).toContain('| mixed precision (bf16) | 10.0 s | 750 | 8.00 MiB | 200.00 MiB | 16.00 MiB | 2.00 MiB | 6.0300 | 415.72 |');
  });

  it('reads each row against the baseline: throughput, traffic and validation loss', () => {
    expect(md).toContain('**mixed precision (bf16)**: tokens/s -25%, peak TF.js memory +0%, model state +0%, bytes sent per step -50%, validation loss 6.0300 vs 6.0000 (+0.50%)');
  });

  it('draws one bar per row in the chart', () => {
    const svg = optimizationsSvg(rows);
    expect(svg.match(/fill="#4477aa"/g)).toHaveLength(2);
    expect(svg).toContain('>mixed precision (bf16)</text>');
  });
});
