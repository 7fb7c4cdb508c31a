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
