import { describe, expect, it } from 'vitest';
import { lineChart, niceTicks } from './charts.js';
import { formatBytes, formatNumber } from './format.js';
import { renderPanels } from './panels.js';
import { RunState } from './run-state.js';

describe('panels and charts', () => {
  it('escapes every string that came from a worker', () => {
    const s = new RunState();
    s.apply({ kind: 'layout', layout: { axes: { dp: 1 }, ranks: [{ rank: 0, host: '<img src=x onerror=alert(1)>', pid: 1, device: 'cpu', coords: { dp: 0 }, holds: ['<b>x</b>'] }] } });
    s.apply({ kind: 'event', event: { time: 0, kind: 'failure', title: 'rank 0 failed', detail: '<script>alert(1)</script>' } });
    const html = renderPanels(s, 0);
    expect(html).not.toMatch(/<img|<script|<b>/);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&lt;script&gt;');
  });

  it('draws the bus bandwidth measured inside the collectives beside the send rate, and shows it per rank', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info: { kind: 'train', model: 'm', world: 2, steps: 3, globalBatch: 4, seqLen: 8, dp: 2, tp: 1, pp: 1, zero: 0, startedAt: 0 } });
    for (let step = 0; step < 3; step++) {
      for (const rank of [0, 1]) {
        s.apply({ kind: 'metrics', rank, time: step, record: { step, ...(rank === 0 ? { loss: 3, step_ms: 100 } : { host_to_device_bytes: 2048, device_to_host_bytes: 1024 }), bytes_sent: 1000, collective_ms: 20, allreduce_busbw_gbs: rank ? 0.8 : 1.2 } });
      }
    }
    const html = renderPanels(s, 0);
    const busbw = /<div class="panel" id="chart-busbw" data-points="3">(.*?)<\/div>/.exec(html);
    expect(busbw, 'the bus bandwidth chart, with a point per step').not.toBeNull();
    expect(busbw![1]).toContain('all-reduce bus bandwidth per rank (measured inside collectives)');
    expect(busbw![1]).toMatch(/data-series="mean over ranks" data-points="3"/);
    expect(busbw![1]).toMatch(/data-series="slowest rank" data-points="3"/);
    expect(html).toContain('send rate per rank (bytes sent / whole step time)');
    expect(html).toContain('<td>20 ms</td><td>0.8 GB/s</td></tr>'); // rank 1's row
    expect(html).toContain('<th>host&rarr;device/step</th><th>device&rarr;host/step</th>');
    expect(html).toContain(`<td>${formatBytes(2048)}</td><td>${formatBytes(1024)}</td><td>20 ms</td>`); // rank 1 counts its copies
    expect(html).toContain('<td>n/a</td><td>n/a</td><td>20 ms</td>'); // rank 0 does not
    expect(html).toContain('>1 GB/s</div>'); // the tile: mean over ranks
  });

  it('draws one path per series with the points it has', () => {
    const svg = lineChart({ title: 'loss', series: [{ name: 'train', color: '#000', points: [[1, 3], [2, 2], [3, Number.NaN], [4, 1]] }] });
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('data-points="3"');
    expect(lineChart({ title: 'empty', series: [{ name: 'x', color: '#000', points: [] }] })).toContain('waiting for data');
    // a log axis skips values <= 0
    expect(lineChart({ title: 'ppl', logY: true, series: [{ name: 'p', color: '#000', points: [[1, 0], [2, 10], [3, 100]] }] })).toContain('data-points="2"');
  });

  it('puts byte ticks on round binary units', () => {
    const svg = lineChart({ title: 'bytes', bytes: true, formatY: formatBytes, series: [{ name: 'b', color: '#000', points: [[1, 8.2 * 2 ** 20], [2, 8.3 * 2 ** 20]] }] });
    expect(svg).toContain('>5.0 MiB</text>');
    expect(svg).not.toMatch(/>4\.8 MiB</);
  });

  it('picks readable ticks and formats', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.13, 0.61, 4)).toEqual([0.2, 0.4, 0.6]); // step 0.2: the first of 1, 2, 5 x 0.1 above (0.61 - 0.13) / 4
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 2 ** 20)).toBe('3.0 MiB');
    expect(formatNumber(12345)).toBe('12.3k');
    expect(formatNumber(0.0123)).toBe('0.0123');
    expect(formatNumber(undefined)).toBe('n/a');
  });
});
