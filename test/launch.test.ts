import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAllStarted, logLines, pidsWithMarker, runTrainer, startTrainer, waitFor } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

// The tests run at once (at most 3 at a time; each checks its own run's processes by its marker),
// so whatever they left is killed after all of them.
afterAll(() => killAllStarted());

function summaryOf(out: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Record<string, unknown>;
}

describe.concurrent('trainer launch (multi-process)', () => {
  // First: it waits longest (the heartbeat timeout), beside the others.
  it('reports a frozen worker by rank and host after the heartbeat timeout', async () => {
    const ws = tinyWorkspace();
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', ws.out('run'), '--steps', '50', '--heartbeat-timeout', '3'])], {
      env: { TRAINER_FAULT: 'rank=1,step=1,kind=silent' },
    });
    const r = await run.result;
    expect(r.code).toBe(1);
    const summary = summaryOf(ws.out('run'));
    const failure = summary.failure as { rank: number; host: string; error: { code: string } };
    expect(failure.rank).toBe(1);
    expect(failure.host).toBeTypeOf('string');
    expect(['TRAINER_ERR_HEARTBEAT_TIMEOUT', 'TRAINER_ERR_COLLECTIVE_TIMEOUT']).toContain(failure.error.code);
    expect(pidsWithMarker(run.marker)).toEqual([]);
  });

  it('trains on 2 workers, writes metrics, summary and model, and leaves no process behind', async () => {
    const ws = tinyWorkspace();
    const out = ws.out('run');
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', out])]);
    const r = await run.result;
    expect(r.code, run.output()).toBe(0);
    const summary = summaryOf(out);
    expect(summary).toMatchObject({ ok: true, world: 2, steps: 4 });
    expect((summary.losses as number[]).length).toBe(4);
    expect(summary.val_loss).toBeTypeOf('number');
    expect(summary.tokens_per_s).toBeGreaterThan(0);
    expect(summary.sample).toBeTypeOf('string');
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // Every rank reports memory and traffic each step; rank 0 also the loss.
    expect(metrics.filter((m) => m.rank === 0).map((m) => m.step)).toEqual([0, 1, 2, 3]);
    expect(metrics.filter((m) => m.rank === 1).map((m) => m.step)).toEqual([0, 1, 2, 3]);
    expect(metrics.filter((m) => typeof m.loss === 'number').length).toBe(4);
    expect(existsSync(join(out, 'model', 'model.safetensors'))).toBe(true);
    // Worker logs come through the launcher, labelled by rank.
    const workers = new Set(logLines(r.stdout).map((l) => l.worker).filter(Boolean));
    expect(workers).toEqual(new Set(['rank 0', 'rank 1']));
    expect(pidsWithMarker(run.marker)).toEqual([]);
  });

  it('exits non-zero, names the failed rank, and stops the other workers when one exits', async () => {
    const ws = tinyWorkspace();
    const run = startTrainer(['launch', '--nodes', '3', ...tinyJobArgs(ws, ['--out', ws.out('run'), '--steps', '20', '--global-batch', '6'])], {
      env: { TRAINER_FAULT: 'rank=1,step=2,kind=exit' },
    });
    const r = await run.result;
    expect(r.code).toBe(1);
    expect(pidsWithMarker(run.marker)).toEqual([]);
    const summary = summaryOf(ws.out('run'));
    expect(summary).toMatchObject({ ok: false, failure: { rank: 1 } });
    expect(run.output()).toMatch(/Run failed on worker rank 1/);
  });

  it('survives a worker killed with SIGKILL: the launch fails cleanly, naming it', async () => {
    const ws = tinyWorkspace();
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', ws.out('run'), '--steps', '20'])], {
      env: { TRAINER_FAULT: 'rank=0,step=1,kind=kill' },
    });
    const r = await run.result;
    expect(r.code).toBe(1);
    expect(summaryOf(ws.out('run'))).toMatchObject({ ok: false, failure: { rank: 0 } });
    expect(run.output()).toMatch(/Run failed on worker rank 0/);
    expect(pidsWithMarker(run.marker)).toEqual([]);
  });

  it('stops every worker on SIGTERM and exits 143', async () => {
    const ws = tinyWorkspace();
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', ws.out('run'), '--steps', '1000'])]);
    await waitFor(() => /step +1\/1000|"step":1/.test(run.output()), 60_000, 'training to start');
    expect(pidsWithMarker(run.marker).length).toBeGreaterThanOrEqual(3);
    run.child.kill('SIGTERM');
    const r = await run.result;
    expect(r.code).toBe(143);
    await waitFor(() => pidsWithMarker(run.marker).length === 0, 10_000, 'every worker to exit');
  });

  it('refuses bad input before starting any worker, with a coded error', async () => {
    const ws = tinyWorkspace();
    // Independent refusals: all at once.
    const [missing, indivisible, tooLong, badTp, badMesh, badStage, mismatch] = await Promise.all([
      runTrainer(['launch', '--nodes', '2', ...tinyJobArgs({ ...ws, corpus: join(ws.dir, 'nope.txt') }, ['--out', ws.out('a')])]),
      runTrainer(['launch', '--nodes', '3', ...tinyJobArgs(ws, ['--out', ws.out('b'), '--global-batch', '4'])]),
      runTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', ws.out('c'), '--seq-len', '64'])]),
      runTrainer(['launch', '--nodes', '3', ...tinyJobArgs(ws, ['--out', ws.out('f'), '--tp', '3', '--global-batch', '3'])]),
      runTrainer(['launch', '--nodes', '3', ...tinyJobArgs(ws, ['--out', ws.out('g'), '--tp', '2'])]),
      runTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', ws.out('e'), '--zero', '4'])]),
      runTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', ws.out('d'), '--tokenizer', join(ws.dir, 'missing-tokenizer.json')])]),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/TRAINER_ERR_CORPUS_NOT_FOUND/);
    expect(missing.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(indivisible.code).toBe(2);
    expect(indivisible.stderr).toMatch(/TRAINER_ERR_BATCH_INDIVISIBLE/);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/TRAINER_ERR_CONTEXT_TOO_LONG/);
    expect(badTp.code).toBe(2);
    expect(badTp.stderr).toMatch(/TRAINER_ERR_TP_INDIVISIBLE: the model's 2 attention heads do not divide among 3 tensor-parallel ranks/);
    expect(badMesh.code).toBe(2);
    expect(badMesh.stderr).toMatch(/TRAINER_ERR_MESH: 3 workers do not split into tensor-parallel groups of 2/);
    expect(badStage.code).toBe(2);
    expect(badStage.stderr).toMatch(/TRAINER_ERR_USAGE: option '--zero <stage>' argument '4' is invalid/);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/TRAINER_ERR_/);
  });
});
