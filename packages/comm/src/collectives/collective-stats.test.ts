import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, type TestWorld } from '../testing/test-world.js';
import { busBandwidthGBs, busFactor, CollectiveStats } from './collective-stats.js';

/** A CollectiveStats on a clock the test moves by hand. */
function manualClock(): { stats: CollectiveStats; at(ms: number): void } {
  let now = 0;
  return { stats: new CollectiveStats(() => now), at: (ms) => { now = ms; } };
}

describe('CollectiveStats', () => {
  it("uses nccl-tests' bus factors per kind and group size", () => {
    expect(busFactor('allReduce', 2)).toBe(1);
    expect(busFactor('allReduce', 4)).toBe(1.5);
    expect(busFactor('reduceScatter', 4)).toBe(0.75);
    expect(busFactor('allGather', 3)).toBeCloseTo(2 / 3, 15);
    expect(busFactor('broadcast', 5)).toBe(1);
    for (const kind of ['allReduce', 'reduceScatter', 'allGather', 'broadcast'] as const) expect(busFactor(kind, 1)).toBe(0);
  });

  it('counts calls, logical bytes, bus bytes and time per kind', () => {
    const { stats, at } = manualClock();
    at(10);
    let t = stats.begin();
    at(14);
    stats.end('allReduce', 4000, 4, t);
    at(20);
    t = stats.begin();
    at(22);
    stats.end('reduceScatter', 800, 4, t);
    t = stats.begin();
    at(25);
    stats.end('allGather', 800, 2, t);
    const s = stats.snapshot();
    expect(s.kinds.allReduce).toEqual({ count: 1, bytes: 4000, busBytes: 6000, timeMs: 4 });
    expect(s.kinds.reduceScatter).toEqual({ count: 1, bytes: 800, busBytes: 600, timeMs: 2 });
    expect(s.kinds.allGather).toEqual({ count: 1, bytes: 800, busBytes: 400, timeMs: 3 });
    expect(s.kinds.broadcast.count).toBe(0);
    expect(s.busBytes).toBe(7000);
    expect(s.busyMs).toBe(9);
    expect(s.inFlight).toBe(0);
  });

  it('counts time in which several collectives overlap once', () => {
    const { stats, at } = manualClock();
    // a: [0, 10], b: [4, 6] inside it, c: [8, 15] overlapping its end; then d: [20, 21] alone
    at(0);
    const a = stats.begin();
    at(4);
    const b = stats.begin();
    at(6);
    stats.end('allGather', 400, 2, b);
    at(8);
    const c = stats.begin();
    at(10);
    stats.end('allReduce', 400, 2, a);
    // a snapshot while c is in flight counts the open interval so far
    at(12);
    expect(stats.snapshot()).toMatchObject({ busyMs: 12, inFlight: 1 });
    at(15);
    stats.end('allReduce', 400, 2, c);
    at(20);
    const d = stats.begin();
    at(21);
    stats.end('reduceScatter', 400, 2, d);
    const s = stats.snapshot();
    expect(s.busyMs).toBe(16); // [0, 15] and [20, 21]
    expect(s.kinds.allReduce.timeMs).toBe(17); // 10 + 7: the calls' own durations overlap
    expect(s.kinds.allReduce.count).toBe(2);
  });

  it('counts a group of one rank with no bytes and no time, and a failed call as busy only', () => {
    const { stats, at } = manualClock();
    stats.countTrivial('allReduce');
    stats.countTrivial('broadcast');
    at(5);
    stats.begin();
    at(7);
    stats.abandon();
    const s = stats.snapshot();
    expect(s.kinds.allReduce).toEqual({ count: 1, bytes: 0, busBytes: 0, timeMs: 0 });
    expect(s.kinds.broadcast.count).toBe(1);
    expect(s.busBytes).toBe(0);
    expect(s.busyMs).toBe(2);
  });

  it('gives the bus bandwidth of an interval in GB/s, none without collectives', () => {
    const { stats, at } = manualClock();
    const before = stats.snapshot();
    expect(busBandwidthGBs(before, stats.snapshot())).toBeUndefined();
    const t = stats.begin();
    at(2); // 2 ms
    stats.end('allReduce', 1e6, 2, t); // 1e6 bus bytes
    expect(busBandwidthGBs(before, stats.snapshot())).toBeCloseTo(0.5, 12); // 1e6 B / 2e-3 s = 5e8 B/s
  });

  it('snapshots are copies', () => {
    const { stats } = manualClock();
    const s = stats.snapshot();
    s.kinds.allReduce.count = 99;
    expect(stats.snapshot().kinds.allReduce.count).toBe(0);
  });
});

describe('Communicator.collectiveStats, 3 ranks', () => {
  let w: TestWorld;
  beforeAll(async () => {
    w = await makeWorld(3);
  });
  afterAll(async () => {
    await w.close();
  });

  it('records an allReduce of a known size on every rank', async () => {
    const before = w.comms.map((c) => c.collectiveStats);
    const length = 10_000;
    await Promise.all(w.comms.map((c) => c.worldGroup.allReduce(new Float32Array(length).fill(1))));
    for (const [r, c] of w.comms.entries()) {
      const s = c.collectiveStats;
      const ar = s.kinds.allReduce;
      expect(ar.count - before[r].kinds.allReduce.count).toBe(1);
      expect(ar.bytes - before[r].kinds.allReduce.bytes).toBe(4 * length);
      expect(ar.busBytes - before[r].kinds.allReduce.busBytes).toBeCloseTo(4 * length * (4 / 3), 6);
      expect(ar.timeMs - before[r].kinds.allReduce.timeMs).toBeGreaterThan(0);
      expect(s.busyMs - before[r].busyMs).toBeGreaterThan(0);
      expect(s.inFlight).toBe(0);
      expect(busBandwidthGBs(before[r], s)).toBeGreaterThan(0);
    }
  });

  it('records reduceScatter, allGather and broadcast with their factors, and groups of one as zero bytes', async () => {
    const before = w.comms.map((c) => c.collectiveStats);
    const solo = w.comms.map((c) => c.newGroup([c.rank]));
    await Promise.all(w.comms.map(async (c, r) => {
      await c.worldGroup.reduceScatter(new Float32Array(300));
      await c.worldGroup.allGather(new Float32Array(100), 300);
      await c.worldGroup.broadcast(new Uint8Array(64), 0);
      await solo[r].allReduce(new Float32Array(50));
    }));
    for (const [r, c] of w.comms.entries()) {
      const s = c.collectiveStats;
      const d = (k: 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast') => ({
        count: s.kinds[k].count - before[r].kinds[k].count, bytes: s.kinds[k].bytes - before[r].kinds[k].bytes, busBytes: s.kinds[k].busBytes - before[r].kinds[k].busBytes,
      });
      expect(d('reduceScatter')).toEqual({ count: 1, bytes: 1200, busBytes: 800 });
      expect(d('allGather')).toEqual({ count: 1, bytes: 1200, busBytes: 800 });
      expect(d('broadcast')).toEqual({ count: 1, bytes: 64, busBytes: 64 });
      expect(d('allReduce')).toEqual({ count: 1, bytes: 0, busBytes: 0 }); // the group of one
    }
  });

  it('counts overlapping collectives of two groups once in the busy time', async () => {
    const second = w.comms.map((c) => c.newGroup([0, 1, 2]));
    const before = w.comms.map((c) => c.collectiveStats);
    await Promise.all(w.comms.map((c, r) => Promise.all([c.worldGroup.allReduce(new Float32Array(200_000)), second[r].allReduce(new Float32Array(200_000))])));
    for (const [r, c] of w.comms.entries()) {
      const s = c.collectiveStats;
      const busy = s.busyMs - before[r].busyMs;
      const summed = s.kinds.allReduce.timeMs - before[r].kinds.allReduce.timeMs;
      expect(s.kinds.allReduce.count - before[r].kinds.allReduce.count).toBe(2);
      expect(busy).toBeGreaterThan(0);
      expect(busy).toBeLessThan(summed); // both were in flight together for a while
    }
  });
});
