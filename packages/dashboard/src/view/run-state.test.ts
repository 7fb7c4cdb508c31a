import { describe, expect, it } from 'vitest';
import { MAX_STEP_POINTS, RunState, type RunStateJSON } from './run-state.js';

const info = { kind: 'train', model: 'gpt-nano', world: 2, steps: 10, globalBatch: 4, seqLen: 32, dp: 2, tp: 1, pp: 1, zero: 0, startedAt: 1000 };
const mem = { params_bytes: 100, grads_bytes: 50, optimizer_bytes: 200, model_state_bytes: 350, peak_tf_bytes: 400, tf_bytes: 300 };

describe('RunState', () => {
  it('builds steps from rank 0 and traffic and memory from every rank', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info });
    expect(s.status.state).toBe('waiting');
    // rank 1's record of step 0 arrives before rank 0's: the send rate waits for rank 0's step time
    s.apply({ kind: 'metrics', rank: 1, time: 2000, record: { step: 0, ...mem, bytes_sent: 1000 } });
    expect(s.ranks.get(1)!.sendRate).toBeUndefined();
    s.apply({ kind: 'metrics', rank: 0, time: 2001, record: { step: 0, loss: 5, lr: 0.001, grad_norm: 1.5, step_ms: 500, tokens_per_s: 256, ...mem, bytes_sent: 3000 } });
    expect(s.status.state).toBe('running');
    const p = s.points.get(0)!;
    expect(p).toMatchObject({ loss: 5, stepMs: 500, tokensPerS: 256, bytesSent: 4000, ranksReported: 2 });
    expect(s.ranks.get(1)!.sendRate).toBe(2000); // 1000 B in 0.5 s
    expect(s.ranks.get(0)!.sendRate).toBe(6000);
    s.apply({ kind: 'metrics', rank: 0, time: 3000, record: { step: 1, loss: 4, step_ms: 400, val_loss: Math.log(20), val_perplexity: 20, ...mem, bytes_sent: 3000 } });
    expect(s.latest()!.step).toBe(1);
    expect(s.latestValidation()!.valPerplexity).toBe(20);
    expect(s.ranks.get(0)!.bytesSentTotal).toBe(6000);
    expect(s.lastUpdate).toBe(3000);
  });

  it('keeps each rank\'s host-device copies per step and their running total', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info });
    s.apply({ kind: 'metrics', rank: 1, time: 1, record: { step: 0, ...mem, bytes_sent: 10, host_to_device_bytes: 700, device_to_host_bytes: 300 } });
    s.apply({ kind: 'metrics', rank: 1, time: 2, record: { step: 1, ...mem, bytes_sent: 10, host_to_device_bytes: 50, device_to_host_bytes: 25 } });
    expect(s.ranks.get(1)).toMatchObject({ hostToDeviceStep: 50, deviceToHostStep: 25, hostDeviceTotal: 1075 });
    // a worker that does not count its copies: the step's figures are unknown, not zero
    s.apply({ kind: 'metrics', rank: 0, time: 3, record: { step: 0, loss: 5, step_ms: 500, ...mem, bytes_sent: 10 } });
    expect(s.ranks.get(0)).toMatchObject({ hostToDeviceStep: undefined, deviceToHostStep: undefined, hostDeviceTotal: 0 });
  });

  it('keeps the bus bandwidth and collective time measured by each rank', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info });
    s.apply({ kind: 'metrics', rank: 0, time: 1, record: { step: 0, loss: 5, step_ms: 500, ...mem, bytes_sent: 3000, collective_ms: 40, allreduce_busbw_gbs: 1.5 } });
    s.apply({ kind: 'metrics', rank: 1, time: 2, record: { step: 0, ...mem, bytes_sent: 3000, collective_ms: 60, allreduce_busbw_gbs: 0.5 } });
    expect(s.points.get(0)!.busbw).toEqual({ sum: 2, min: 0.5, ranks: 2 });
    expect(s.ranks.get(1)).toMatchObject({ collectiveMsStep: 60, collectiveMsTotal: 60, busbwGBs: 0.5 });
    // a step without collectives (null) leaves the step's bandwidth out, and the running total as it was
    s.apply({ kind: 'metrics', rank: 1, time: 3, record: { step: 1, ...mem, bytes_sent: 0, collective_ms: 0, allreduce_busbw_gbs: null } });
    expect(s.points.get(1)!.busbw).toBeUndefined();
    expect(s.ranks.get(1)).toMatchObject({ collectiveMsStep: 0, collectiveMsTotal: 60, busbwGBs: undefined });
    s.apply({ kind: 'metrics', rank: 1, time: 4, record: { step: 2, ...mem, bytes_sent: 3000, collective_ms: 25, allreduce_busbw_gbs: 2 } });
    expect(s.ranks.get(1)).toMatchObject({ collectiveMsStep: 25, collectiveMsTotal: 85, busbwGBs: 2 });
    // records from before these metrics existed: nothing is made up
    s.apply({ kind: 'metrics', rank: 0, time: 5, record: { step: 3, loss: 4, ...mem, bytes_sent: 10 } });
    expect(s.ranks.get(0)).toMatchObject({ collectiveMsStep: undefined, collectiveMsTotal: 40, busbwGBs: undefined });
  });

  it('forgets the steps after a restart point, which are trained again', () => {
    const s = new RunState();
    for (let step = 0; step < 5; step++) s.apply({ kind: 'metrics', rank: 0, time: step, record: { step, loss: 10 - step, bytes_sent: 10 } });
    s.apply({ kind: 'event', event: { time: 10, kind: 'restart', step: 3, title: 'restarted from checkpoint 3', detail: 'rank 1 failed' } });
    expect([...s.points.keys()].sort()).toEqual([0, 1, 2]);
    s.apply({ kind: 'metrics', rank: 0, time: 11, record: { step: 3, loss: 6.5, bytes_sent: 10 } });
    expect(s.points.get(3)).toMatchObject({ loss: 6.5, bytesSent: 10, ranksReported: 1 });
  });

  it('thins the history beyond MAX_STEP_POINTS, the same way wherever it runs', () => {
    const a = new RunState();
    for (let step = 0; step <= MAX_STEP_POINTS; step++) a.apply({ kind: 'metrics', rank: 0, time: step, record: { step, loss: 1 } });
    expect(a.stride).toBe(2);
    expect(a.points.size).toBe(MAX_STEP_POINTS / 2 + 1);
    expect([...a.points.keys()].every((k) => k % 2 === 0)).toBe(true);
    a.apply({ kind: 'metrics', rank: 0, time: 0, record: { step: MAX_STEP_POINTS + 1, loss: 1 } });
    expect(a.points.has(MAX_STEP_POINTS + 1)).toBe(false);
  });

  it('survives a JSON round trip (snapshot -> browser) and refuses foreign snapshots', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info });
    s.apply({ kind: 'layout', layout: { axes: { dp: 2, tp: 1, pp: 1 }, ranks: [] } });
    s.apply({ kind: 'metrics', rank: 0, time: 5, record: { step: 0, loss: 3, step_ms: 100, ...mem, bytes_sent: 7, collective_ms: 12, allreduce_busbw_gbs: 0.25 } });
    s.apply({ kind: 'event', event: { time: 6, kind: 'checkpoint', step: 0, title: 'checkpoint 0' } });
    const copy = RunState.fromJSON(JSON.parse(JSON.stringify(s.toJSON())) as RunStateJSON);
    expect(copy.toJSON()).toEqual(s.toJSON());
    // the same patch applied to both keeps them equal
    const patch = { kind: 'metrics' as const, rank: 1, time: 9, record: { step: 0, ...mem, bytes_sent: 3 } };
    s.apply(patch);
    copy.apply(patch);
    expect(copy.toJSON()).toEqual(s.toJSON());
    expect(() => RunState.fromJSON({ ...s.toJSON(), version: 99 })).toThrow(/trainer-run-state v1/);
  });

  it('a side record of a step (a checkpoint\'s copy time) leaves the rank\'s figures for that step as they were', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info });
    s.apply({ kind: 'metrics', rank: 0, time: 1, record: { step: 99, loss: 5, step_ms: 500, ...mem, bytes_sent: 3000, collective_ms: 40, allreduce_busbw_gbs: 1.5 } });
    s.apply({ kind: 'metrics', rank: 0, time: 2, record: { step: 99, checkpoint_step: 100, checkpoint_copy_ms: 3, checkpoint_blocked_ms: 4, checkpoint_shard_bytes: 1e6 } });
    expect(s.ranks.get(0)).toMatchObject({ step: 99, bytesSentStep: 3000, bytesSentTotal: 3000, busbwGBs: 1.5 });
    expect(s.points.get(99)).toMatchObject({ bytesSent: 3000, ranksReported: 1 });
  });

  it('ignores records without a step', () => {
    const s = new RunState();
    s.apply({ kind: 'metrics', rank: 0, time: 1, record: { loss: 2 } });
    expect(s.points.size).toBe(0);
    expect(s.ranks.size).toBe(0);
  });
});
