import { afterEach, describe, expect, it } from 'vitest';
import { TEST_TOKEN } from '../testing/test-world.js';
import { DataPlaneThread } from './data-plane-thread.js';

let threads: DataPlaneThread[] = [];
afterEach(async () => {
  await Promise.all(threads.map((t) => t.close()));
  threads = [];
});

async function connected(world: number, collectiveTimeoutMs = 10_000): Promise<DataPlaneThread[]> {
  threads = await Promise.all(Array.from({ length: world }, () => DataPlaneThread.start({ token: TEST_TOKEN, host: '127.0.0.1' })));
  const peers = threads.map((t, rank) => ({ rank, ...t.address }));
  await Promise.all(threads.map((t, r) => t.connect(r, world, peers, { collectiveTimeoutMs })));
  return threads;
}

describe('DataPlaneThread (collectives on their own thread, over SharedArrayBuffers)', () => {
  it('all-reduces in place, several calls in flight at once, fp32 and bf16 on the wire, and counts its bytes', async () => {
    const ts = await connected(3);
    const n = 20_003;
    const bufs = ts.map((_, r) => [0, 1, 2].map((k) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + r * 3 + k) % 11) - 5)));
    await Promise.all(ts.flatMap((t, r) => bufs[r].map((b, k) => t.allReduce(b, { codec: k === 2 ? 'bf16' : 'fp32' }))));
    for (let k = 0; k < 3; k++) {
      const want = Float32Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((s, r) => s + (((i * 7 + r * 3 + k) % 11) - 5), 0));
      for (let r = 0; r < 3; r++) expect(Array.from(bufs[r][k]), `call ${k} rank ${r}`).toEqual(Array.from(want)); // small integers: exact in fp32 and bf16
    }
    // 3 ranks, 3 buffers of n fp32 (2 in fp32, 1 in bf16): 2 (W-1)/W of each per rank, plus headers
    const logical = (2 * 4 + 2) * n * (2 * 2 / 3);
    for (const t of ts) expect(t.stats.bytesSent / logical).toBeGreaterThan(0.99);
    for (const t of ts) expect(t.stats.bytesSent / logical).toBeLessThan(1.05);
  });

  it('a peer that goes away fails the others\' calls with a coded error, not a hang; calls after close are refused', async () => {
    const ts = await connected(2, 5_000);
    await ts[1].close();
    const err = await ts[0].allReduce(new Float32Array(1000).fill(1)).catch((e: unknown) => e);
    expect((err as { code: string }).code).toMatch(/^TRAINER_ERR_(PEER_LOST|COLLECTIVE_TIMEOUT)$/);
    expect(await ts[1].allReduce(new Float32Array(10)).catch((e: { code: string }) => e.code)).toBe('TRAINER_ERR_CHANNEL_CLOSED');
  });
});
