import { describe, expect, it } from 'vitest';
import { renderPrometheus } from './prometheus.js';
import { RunState } from './view/run-state.js';

/** Checks the text exposition format line by line: HELP and TYPE before a family's samples, valid names, labels and values. */
function parseExposition(text: string): Map<string, { type: string; samples: Array<{ labels: string; value: number }> }> {
  const families = new Map<string, { type: string; samples: Array<{ labels: string; value: number }> }>();
  let current: string | undefined;
  for (const line of text.trimEnd().split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      current = m[1];
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$/.exec(line);
    if (m) {
      if (m[1] !== current) throw new Error(`TYPE without HELP: ${line}`);
      families.set(m[1], { type: m[2], samples: [] });
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== current) throw new Error(`bad sample line: ${line}`);
    const value = Number(m[3].replace('+Inf', 'Infinity').replace('-Inf', '-Infinity'));
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value: ${line}`);
    families.get(current)!.samples.push({ labels: m[2] ?? '', value });
  }
  return families;
}

describe('renderPrometheus', () => {
  it('exposes the run figures in valid text format', () => {
    const s = new RunState();
    s.apply({ kind: 'info', info: { kind: 'train', model: 'm', world: 2, steps: 10, globalBatch: 4, seqLen: 8, dp: 2, tp: 1, pp: 1, zero: 1, startedAt: 0 } });
    s.apply({ kind: 'layout', layout: { axes: { dp: 2 }, ranks: [0, 1].map((rank) => ({ rank, host: rank ? 'b"x\\y' : 'a', pid: 1, device: 'cpu', coords: { dp: rank }, holds: [] })) } });
    for (const rank of [0, 1]) {
      s.apply({ kind: 'metrics', rank, time: 1, record: { step: 0, ...(rank === 0 ? { loss: 2.5, step_ms: 250, tokens_per_s: 128, lr: 0.01, grad_norm: 0.5 } : {}), params_bytes: 10, grads_bytes: 20, optimizer_bytes: 30 + rank, model_state_bytes: 60, peak_tf_bytes: 70, tf_bytes: 5, bytes_sent: 1000, host_to_device_bytes: 400, device_to_host_bytes: 100 * (rank + 1), collective_ms: 100 + 50 * rank, allreduce_busbw_gbs: 1.25 - rank } });
    }
    s.apply({ kind: 'metrics', rank: 0, time: 2, record: { step: 1, loss: 2.4, step_ms: 250, bytes_sent: 1000, collective_ms: 150, allreduce_busbw_gbs: 1.5 } });
    s.apply({ kind: 'event', event: { time: 2, kind: 'checkpoint', step: 0, title: 'c' } });
    const families = parseExposition(renderPrometheus(s));
    expect(families.get('trainer_loss')!.samples).toEqual([{ labels: '', value: 2.4 }]);
    expect(families.get('trainer_step')!.samples[0].value).toBe(2);
    expect(families.get('trainer_step_seconds')!.samples[0].value).toBe(0.25);
    expect(families.get('trainer_rank_optimizer_bytes')!.samples).toEqual([{ labels: '{rank="0",host="a"}', value: 30 }, { labels: '{rank="1",host="b\\"x\\\\y"}', value: 31 }]);
    expect(families.get('trainer_rank_send_bytes_per_second')!.samples.map((x) => x.value)).toEqual([4000, 4000]);
    // measured inside the collectives: the latest step's bus bandwidth, the time summed over steps
    expect(families.get('trainer_rank_collective_busbw_gbps')).toEqual({ type: 'gauge', samples: [{ labels: '{rank="0",host="a"}', value: 1.5 }, { labels: '{rank="1",host="b\\"x\\\\y"}', value: 0.25 }] });
    expect(families.get('trainer_rank_collective_seconds_total')).toEqual({ type: 'counter', samples: [{ labels: '{rank="0",host="a"}', value: 0.25 }, { labels: '{rank="1",host="b\\"x\\\\y"}', value: 0.15 }] });
    expect(families.get('trainer_rank_bytes_sent_total')!.type).toBe('counter');
    // step 1's record from rank 0 counts no copies: the total stays at step 0's
    expect(families.get('trainer_rank_host_device_bytes_total')).toEqual({ type: 'counter', samples: [{ labels: '{rank="0",host="a"}', value: 500 }, { labels: '{rank="1",host="b\\"x\\\\y"}', value: 600 }] });
    expect(families.get('trainer_checkpoints_total')!.samples[0].value).toBe(1);
    expect(families.get('trainer_run_state')!.samples.find((x) => x.labels.includes('running'))!.value).toBe(1);
    // no validation yet: the family is absent rather than a made-up value
    expect(families.has('trainer_val_loss')).toBe(false);
  });
});
