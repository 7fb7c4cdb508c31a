import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrainerError } from '@trainer/errors';
import { buildRunState, reportHtml } from './report.js';

function runDir(lines: object[], summary: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-report-'));
  writeFileSync(join(dir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary));
  return dir;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof TrainerError ? `${e.code}: ${e.message}` : String(e);
  }
  return undefined;
}

describe('trainer report', () => {
  it('rebuilds the run from metrics.jsonl and summary.json into one self-contained page', async () => {
    const lines = [];
    for (let step = 0; step < 6; step++) {
      for (const rank of [0, 1]) {
        lines.push({ time: new Date(1_700_000_000_000 + step * 1000).toISOString(), rank, step, ...(rank === 0 ? { loss: 6 - step, step_ms: 100, tokens_per_s: 1000 } : {}),
          ...(rank === 0 && step === 5 ? { val_loss: 1.5, val_perplexity: Math.exp(1.5) } : {}), params_bytes: 10, grads_bytes: 10, optimizer_bytes: 20, model_state_bytes: 40, peak_tf_bytes: 50, bytes_sent: 100,
          collective_ms: 5, allreduce_busbw_gbs: 0.5 + rank });
      }
    }
    const dir = runDir(lines, { ok: true, model: 'gpt-nano', world: 2, steps: 6, global_batch: 4, seq_len: 16, zero: 2, sample: 'The <whale>' });
    const { state, summary } = await buildRunState(dir);
    expect(state.sortedPoints().map((p) => p.loss)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(state.sortedPoints()[0].bytesSent).toBe(200);
    expect(state.info).toMatchObject({ model: 'gpt-nano', world: 2, dp: 2, zero: 2 });
    expect(state.status.state).toBe('finished');
    const html = reportHtml(state, summary, dir);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('data-points="6"');
    expect(html).toMatch(/id="chart-busbw" data-points="6"/); // the bus bandwidth measured inside the collectives
    expect(html).toContain('The &lt;whale&gt;');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
  });

  it('shows the cause of a failed run', async () => {
    const dir = runDir([{ rank: 0, step: 0, loss: 3 }], { ok: false, world: 2, failure: { rank: 1, host: 'h', error: { code: 'TRAINER_ERR_WORKER_EXITED', message: 'worker rank 1 exited with code 1' } } });
    const { state, summary } = await buildRunState(dir);
    expect(state.status).toMatchObject({ state: 'failed' });
    expect(reportHtml(state, summary, dir)).toContain('TRAINER_ERR_WORKER_EXITED: worker rank 1 exited with code 1');
  });

  it('names what is wrong with the run folder', async () => {
    expect(await codeOf(buildRunState('/nonexistent/run'))).toMatch(/^TRAINER_ERR_REPORT_INPUT: cannot read \/nonexistent\/run\/summary\.json/);
    const bad = runDir([], { ok: true });
    writeFileSync(join(bad, 'metrics.jsonl'), '{"rank":0,"step":0}\n{oops\n');
    expect(await codeOf(buildRunState(bad))).toMatch(/metrics\.jsonl line 2 is not JSON/);
  });
});
