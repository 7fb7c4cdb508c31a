import { afterEach, describe, expect, it } from 'vitest';
import { netnsUnavailableReason } from './helpers/netns.js';
import { killAllStarted, runTrainer } from './helpers/processes.js';

afterEach(() => killAllStarted());

const reason = netnsUnavailableReason();

/**
 * `trainer bench scale` end to end on a tiny model: every variant runs with its workers on one
 * host and split over 2 emulated hosts (namespaces, links shaped by tc), and the summary gives
 * each one's link efficiency and exposed communication. What DiLoCo and hierarchical all-reduce
 * save is counted: bytes per step fall by H, and the hosts' links carry less. (Timings are
 * printed, never asserted.)
 */
describe.skipIf(reason !== null)('trainer bench scale (emulated hosts)', () => {
  it('runs every-step DP, DiLoCo (plain and overlapped) and hierarchical all-reduce on one host and on 2 hosts over a shaped link, and summarizes them', async () => {
    const r = await runTrainer(['bench', 'scale', '--model', 'gpt-micro', '--link', '100mbit', '--batch', '2', '--steps', '4', '--warmup', '2', '--sync-every', '2', '--outer-overlap',
      '--only', 'overlap,diloco,hierarchical', '--json'], { timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const rows = lines.filter((l) => l.run);
    const runs = ['DP every step, overlapped', 'DiLoCo --sync-every 2', 'DiLoCo --sync-every 2 overlap 1', 'DP 2x2, flat (direct)', 'DP 2x2, hierarchical'];
    expect(rows.map((x) => `${x.run} / ${x.placement}`)).toEqual(runs.flatMap((run) => [`${run} / one host`, `${run} / 2 hosts`]));
    for (const x of rows) expect(x.tokens_per_s).toBeGreaterThan(0);
    const dp = rows[1].bytes_sent_per_step;
    expect(dp).toBeGreaterThan(0);
    expect(rows[0].bytes_sent_per_step).toBe(dp); // the same traffic over loopback or the link
    expect(rows[3].bytes_sent_per_step / dp).toBeCloseTo(0.5, 2); // one sync (the model's size) every 2 steps
    // Overlapped DiLoCo moves the same bytes, on its data-plane thread (counted as its all-reduces complete: one interval late, the run's last sync after the timed steps).
    expect(rows[5].bytes_sent_per_step / dp).toBeCloseTo(0.5, 2);
    // What crossed the hosts' links (their veth counters): DiLoCo about half of DP's; with 2 workers per host,
    // hierarchical all-reduce sends each host's gradient across once (N per host), half of what a flat direct
    // all-reduce over the 4 sends across (each rank's shards for the 2 ranks of the other host, both phases: 2N per host).
    expect(rows[3].link_bytes_per_step / rows[1].link_bytes_per_step).toBeLessThan(0.65);
    const ratio = rows[9].link_bytes_per_step / rows[7].link_bytes_per_step;
    expect(ratio).toBeGreaterThan(0.4);
    expect(ratio).toBeLessThan(0.65);
    for (const i of [0, 2, 4, 6, 8]) expect(rows[i].link_bytes_per_step).toBeNull();
    const summary = lines[lines.length - 1].summary as { run: string; link_efficiency: number; exposed_ms_per_step: number }[];
    expect(summary.map((s) => s.run)).toEqual(runs);
    for (const s of summary) expect(Number.isFinite(s.link_efficiency) && Number.isFinite(s.exposed_ms_per_step)).toBe(true);
  }, 180_000);
});
