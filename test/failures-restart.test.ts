import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxParamDiff, tinyRun, type TinyRun } from './helpers/checkpoint-run.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAllStarted, startTrainer, waitFor } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

// The tests run at once (a few at a time: most of their time is waiting for a timeout to
// detect a failure), so their processes are killed after all of them, not after each.
afterAll(() => killAllStarted());

/**
 * Restarts on one machine (`trainer launch --max-restarts`): every kind of failure the
 * coordinator detects (a worker exiting, a silent worker, a collective timeout, a desynchronized
 * collective) restarts the whole group from the newest checkpoint, and the run ends exactly as
 * an uninterrupted one; a restart that cannot succeed stops with exit code 3 instead of looping.
 */
const JOB = ['--steps', '8', '--save-every', '2', '--heartbeat-timeout', '3'];
const ws = tinyWorkspace();
let reference: TinyRun;
beforeAll(async () => {
  reference = await tinyRun(ws, 'reference', 2, JOB);
  expect(reference.code, reference.output).toBe(0);
}, 120_000);

const restarted = (run: TinyRun) => run.summary as TinyRun['summary'] & { restarts: number; lost_steps: number; exit_code: number; rounds: Record<string, any>[]; stopped?: { code: string } };

describe.concurrent('restarts (trainer launch --max-restarts)', () => {
  it('a killed worker: the group restarts from the newest checkpoint and ends bitwise equal to an uninterrupted run; the summary says what happened', async () => {
    const run = await tinyRun(ws, 'kill', 2, [...JOB, '--max-restarts', '2'], { TRAINER_FAULT: 'rank=1,step=5,kind=kill' });
    expect(run.code, run.output).toBe(0);
    const s = restarted(run);
    expect(s).toMatchObject({ ok: true, restarts: 1, exit_code: 0 });
    expect(s.rounds[0].failure).toMatchObject({ rank: 1, code: 'TRAINER_ERR_WORKER_EXITED', last_step: 4 });
    expect(s.rounds[1]).toMatchObject({ round: 1, world: 2, start_step: expect.any(Number) });
    expect([2, 4]).toContain(s.rounds[1].start_step);
    expect(s.lost_steps).toBe(5 - s.rounds[1].start_step);
    expect(run.output).toMatch(/restart 1 of 2: worker rank 1 \(host [^)]+\) failed after step 5 \(TRAINER_ERR_WORKER_EXITED\); restarting all 2 workers from checkpoint \S+step-00000[24]/);
    expect(run.output).toMatch(/restarts +1 of 2 \(\d step\(s\) trained again\)/);
    expect(run.output).toMatch(/round 0: rank 1 \([^)]+\) failed after step 5: TRAINER_ERR_WORKER_EXITED; round 1 resumed at step [24] on 2 worker\(s\)/);
    expect(run.summary.losses).toEqual(reference.summary.losses);
    expect(Buffer.compare(run.modelBytes!, reference.modelBytes!)).toBe(0);
  }, 120_000);

  it.each([
    ['a silent (frozen) worker', 'rank=1,step=3,kind=silent', 'TRAINER_ERR_HEARTBEAT_TIMEOUT', []],
    ['a hung worker (collective timeout)', 'rank=1,step=3,kind=hang', 'TRAINER_ERR_COLLECTIVE_TIMEOUT', ['--collective-timeout', '2']],
    ['a desynchronized collective', 'rank=0,step=3,kind=desync', 'TRAINER_ERR_COLLECTIVE_MISMATCH', []],
  ])('%s is detected, named and restarted from', async (_what, fault, code, extra) => {
    const run = await tinyRun(ws, `fault-${code}`, 2, [...JOB, '--max-restarts', '1', ...extra], { TRAINER_FAULT: fault });
    expect(run.code, run.output).toBe(0);
    const s = restarted(run);
    expect(s.restarts).toBe(1);
    expect(s.rounds[0].failure.code).toBe(code);
    if (code !== 'TRAINER_ERR_COLLECTIVE_MISMATCH') expect(s.rounds[0].failure.rank).toBe(1);
    expect(maxParamDiff(run, reference)).toBe(0);
  }, 120_000);

  it('without a checkpoint the group starts over from step 0, saying so', async () => {
    const run = await tinyRun(ws, 'scratch', 2, ['--steps', '8', '--max-restarts', '1'], { TRAINER_FAULT: 'rank=0,step=3,kind=exit' });
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('restarting all 2 workers from step 0: no checkpoint yet; 3 step(s) to train again');
    expect(restarted(run)).toMatchObject({ restarts: 1, lost_steps: 3 });
    expect(maxParamDiff(run, reference)).toBe(0);
  }, 120_000);

  it('a failure before the first step that repeats stops with exit code 3, not a loop', async () => {
    const run = await tinyRun(ws, 'futile', 2, [...JOB, '--max-restarts', '5'], { TRAINER_FAULT: 'rank=1,step=0,kind=throw,round=any' });
    expect(run.code, run.output).toBe(3);
    const s = restarted(run);
    expect(s).toMatchObject({ ok: false, restarts: 1, exit_code: 3, stopped: { code: 'TRAINER_ERR_RESTART_FUTILE' } });
    expect(run.output).toContain('not restarting: TRAINER_ERR_RESTART_FUTILE: rounds 0 and 1 both failed before completing a step, with the same cause: TRAINER_ERR_INJECTED_FAULT');
    expect(run.output).toMatch(/Not restarted: TRAINER_ERR_RESTART_FUTILE/);
  }, 120_000);

  it('a configuration a restart cannot fix stops at once with exit code 3', async () => {
    const run = await tinyRun(ws, 'config', 2, [...JOB, '--max-restarts', '5', '--backend', 'cuda']);
    expect(run.code, run.output).toBe(3);
    expect(restarted(run)).toMatchObject({ ok: false, restarts: 0, stopped: { code: 'TRAINER_ERR_NOT_RESTARTABLE' } });
    expect(run.output).toContain('not restarting: TRAINER_ERR_NOT_RESTARTABLE: a restart would fail the same way: TRAINER_ERR_BACKEND_UNAVAILABLE');
  }, 120_000);

  it('a failure in every round uses up --max-restarts and exits 1', async () => {
    const run = await tinyRun(ws, 'exhausted', 2, [...JOB, '--max-restarts', '2'], { TRAINER_FAULT: 'rank=0,step=5,kind=exit,round=any' });
    expect(run.code, run.output).toBe(1);
    const s = restarted(run);
    expect(s).toMatchObject({ ok: false, restarts: 2, exit_code: 1, stopped: { code: 'TRAINER_ERR_RESTARTS_EXHAUSTED' } });
    expect(s.rounds.map((r) => r.failure?.code)).toEqual(['TRAINER_ERR_WORKER_EXITED', 'TRAINER_ERR_WORKER_EXITED', 'TRAINER_ERR_WORKER_EXITED']);
    // Every round fails at step 5, so every restart resumes from step 4's checkpoint, or from step 2's
    // when 4's save was still in flight as the round failed (in round 1 it may complete where round 0's did not).
    const [, first, second] = s.rounds.map((r) => r.start_step);
    expect([2, 4]).toContain(first);
    expect([2, 4]).toContain(second);
    expect(second).toBeGreaterThanOrEqual(first);
  }, 120_000);

  it('trainer coordinator --max-restarts: workers that a scheduler starts again join the next round', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const env = { TRAINER_TOKEN: 'restart-test-token-0123456789abcdef' };
    const out = ws.out('standalone');
    const coordinator = startTrainer(['coordinator', '--nodes', '2', '--port', String(port), '--host', '127.0.0.1', '--max-restarts', '1', ...tinyJobArgs(ws, ['--out', out, ...JOB])], { env });
    await waitFor(() => /coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');
    const workers = (fault: string) => [0, 1].map((rank) => startTrainer(['worker'], {
      env: { ...env, TRAINER_FAULT: fault, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: '2', RANK: String(rank), LOCAL_RANK: String(rank) },
    }));
    // The first pair: rank 1 exits at step 5 (round 0 only), rank 0 is aborted. A scheduler restarts both.
    const first = workers('rank=1,step=5,kind=exit');
    const [a, b] = await Promise.all(first.map((w) => w.result));
    expect([a.code, b.code]).toEqual([1, 3]);
    const second = workers('rank=1,step=5,kind=exit');
    const [c, ...rest] = await Promise.all([coordinator.result, ...second.map((w) => w.result)]);
    expect(c.code, coordinator.output()).toBe(0);
    for (const r of rest) expect(r.code).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: true, restarts: 1, exit_code: 0 });
    expect(summary.rounds[0].failure).toMatchObject({ rank: 1, code: expect.stringMatching(/TRAINER_ERR_(WORKER_LOST|WORKER_EXITED)/) });
    expect(summary.losses).toEqual(reference.summary.losses);
  }, 120_000);
});
