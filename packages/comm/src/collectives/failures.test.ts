import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { TrainerError } from '@trainer/errors';
import { connectChannel } from '../transport/connect-channel.js';
import type { ChannelRejectInfo } from '../transport/channel-server.js';
import { DataPlane } from './data-plane.js';
import { makeWorld, TEST_TOKEN, type TestWorld } from '../testing/test-world.js';

const worlds: TestWorld[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
});

async function world(n: number, collectiveTimeoutMs = 30_000): Promise<TestWorld> {
  const w = await makeWorld(n, { collectiveTimeoutMs });
  worlds.push(w);
  return w;
}

/** Settles every promise and returns each one's error (undefined when it resolved). */
async function errorsOf(ps: Array<Promise<unknown>>): Promise<Array<TrainerError | undefined>> {
  const rs = await Promise.allSettled(ps);
  return rs.map((r) => (r.status === 'rejected' ? (r.reason as TrainerError) : undefined));
}

async function expectWorldWorks(w: TestWorld): Promise<void> {
  const bufs = w.comms.map((_, r) => Float32Array.from([r, 1]));
  await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
  const n = w.comms.length;
  for (const b of bufs) expect(Array.from(b)).toEqual([(n * (n - 1)) / 2, n]);
}

describe('collective failures are named, never silent hangs', () => {
  it('a size mismatch fails every rank with COLLECTIVE_MISMATCH naming the ranks and ops', async () => {
    const w = await world(3);
    const t0 = Date.now();
    const errs = await errorsOf(w.comms.map((c, r) => c.worldGroup.allReduce(new Float32Array(r === 1 ? 200 : 100))));
    expect(Date.now() - t0).toBeLessThan(5_000); // detected from the arrivals, long before the 30 s timeout
    for (const e of errs) {
      expect(e?.code).toBe('TRAINER_ERR_COLLECTIVE_MISMATCH');
      expect(e?.message).toMatch(/rank 1 called allReduce:sum(@direct)?\(800 bytes/);
      expect(e?.message).toMatch(/rank [02] called allReduce:sum(@direct)?\(400 bytes/);
    }
    // the group is now unusable, and says why, immediately
    await expect(w.comms[0].worldGroup.barrier()).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_MISMATCH' });
    // a fresh group over the same ranks still works
    const g = w.comms.map((c) => c.newGroup([0, 1, 2]));
    const bufs = [0, 1, 2].map((r) => Float32Array.from([r + 1]));
    await Promise.all(g.map((x, r) => x.allReduce(bufs[r])));
    expect(bufs.map((b) => b[0])).toEqual([6, 6, 6]);
  });

  it('different ops or codecs at the same sequence number are a mismatch too', async () => {
    const w = await world(2);
    const g = w.comms.map((c) => c.newGroup([0, 1]));
    const e1 = await errorsOf([g[0].allReduce(new Float32Array(8), { codec: 'bf16' }), g[1].allReduce(new Float32Array(8))]);
    for (const e of e1) expect(e?.message).toMatch(/bf16.*fp32|fp32.*bf16/);
    const h = w.comms.map((c) => c.newGroup([0, 1]));
    const e2 = await errorsOf([h[0].allGather(new Float32Array(4), 8), h[1].reduceScatter(new Float32Array(8))]);
    for (const e of e2) {
      expect(e?.code).toBe('TRAINER_ERR_COLLECTIVE_MISMATCH');
      expect(e?.message).toMatch(/allGather/);
      expect(e?.message).toMatch(/reduceScatter/);
    }
  });

  it('a missing rank fails every waiting rank with COLLECTIVE_TIMEOUT naming it and its host', async () => {
    const w = await world(3, 400);
    const t0 = Date.now();
    const errs = await errorsOf([w.comms[0].worldGroup.allReduce(new Float32Array(10)), w.comms[1].worldGroup.allReduce(new Float32Array(10))]);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(5_000);
    const host2 = `${w.planes[2].address.host}:${w.planes[2].address.port}`;
    for (const e of errs) {
      expect(e?.code).toBe('TRAINER_ERR_COLLECTIVE_TIMEOUT');
      expect(e?.message).toContain(`rank 2 (${host2})`);
      expect(e?.details?.missing).toEqual([2]);
    }
    // the latecomer is told at once instead of hanging
    const late = Date.now();
    await expect(w.comms[2].worldGroup.allReduce(new Float32Array(10))).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_TIMEOUT' });
    expect(Date.now() - late).toBeLessThan(300);
  });

  it('a barrier, a broadcast and a recv time out by name as well', async () => {
    const w = await world(2, 300);
    await expect(w.comms[0].worldGroup.barrier()).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_TIMEOUT', details: expect.objectContaining({ missing: [1] }) });
    const g = w.comms.map((c) => c.newGroup([0, 1]));
    await expect(g[1].broadcast(new Uint8Array(10), 0)).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_TIMEOUT', details: expect.objectContaining({ missing: [0] }) });
    const h = w.comms.map((c) => c.newGroup([0, 1]));
    await expect(h[0].recv(new Uint8Array(4), 1, { timeoutMs: 200 })).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_TIMEOUT', details: expect.objectContaining({ missing: [1] }) });
  });

  it('a send/recv size mismatch is named', async () => {
    const w = await world(2);
    const g = w.comms.map((c) => c.worldGroup);
    await g[0].send(new Uint8Array(5), 1);
    await expect(g[1].recv(new Uint8Array(4), 0)).rejects.toMatchObject({ code: 'TRAINER_ERR_COLLECTIVE_MISMATCH' });
  });

  it('refuses bad arguments with coded errors', async () => {
    const w = await world(2);
    const g = w.comms[0].worldGroup;
    await expect(g.allReduce([1, 2] as unknown as Float32Array)).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.allReduce(new Float32Array(2), { op: 'prod' as 'sum' })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.allReduce(new Float32Array(2), { codec: 'int8' as 'fp32' })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.allGather(new Float32Array(3), 4)).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.broadcast(new Float32Array(2), 2)).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.send(new Float32Array(2), 0)).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await expect(g.barrier({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    expect(() => w.comms[0].newGroup([0, 0])).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
    expect(() => w.comms[0].newGroup([5])).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
    await expectWorldWorks(w);
  });

  it('a closed peer makes its groups fail with PEER_LOST; groups without it carry on', async () => {
    const w = await world(3);
    const g01 = w.comms.map((c) => c.newGroup([0, 1]));
    await w.comms[2].close();
    await expect(w.comms[0].worldGroup.allReduce(new Float32Array(4))).rejects.toMatchObject({ code: 'TRAINER_ERR_PEER_LOST', details: expect.objectContaining({ rank: 2 }) });
    const bufs = [Float32Array.from([1]), Float32Array.from([2])];
    await Promise.all([g01[0].allReduce(bufs[0]), g01[1].allReduce(bufs[1])]);
    expect(bufs.map((b) => b[0])).toEqual([3, 3]);
  });
});

describe('the data plane refuses intruders and keeps working', () => {
  it('refuses wrong tokens, garbage and a late authenticated peer, while collectives go on', async () => {
    const w = await world(2);
    const rejects: ChannelRejectInfo[] = [];
    w.planes[0].on('reject', (info: ChannelRejectInfo) => rejects.push(info));
    const port = w.planes[0].address.port;
    await expect(connectChannel({ host: '127.0.0.1', port, token: 'not-the-token', role: 'data' })).rejects.toMatchObject({ code: 'TRAINER_ERR_AUTH_FAILED' });
    await expect(connectChannel({ host: '127.0.0.1', port, token: TEST_TOKEN, role: 'control' })).rejects.toMatchObject({ code: 'TRAINER_ERR_ROLE_MISMATCH' });
    const sock = tcpConnect(port, '127.0.0.1');
    sock.on('error', () => {});
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    await once(sock, 'close');
    // right token, right role, but the world is complete: the channel is closed at once
    const intruder = await connectChannel({ host: '127.0.0.1', port, token: TEST_TOKEN, role: 'data', hello: { rank: 1, world: 2 }, stream: true });
    await once(intruder, 'close');
    await expect.poll(() => rejects.length).toBe(3);
    expect(rejects.map((r) => r.code)).toEqual(['TRAINER_ERR_AUTH_FAILED', 'TRAINER_ERR_ROLE_MISMATCH', 'TRAINER_ERR_FRAME_INVALID']);
    await expectWorldWorks(w);
  });

  it('connect names the ranks that never showed up', async () => {
    const planes = await Promise.all([0, 1].map(() => DataPlane.listen({ token: TEST_TOKEN })));
    const peers = planes.map((p, rank) => ({ rank, ...p.address }));
    const t0 = Date.now();
    await expect(planes[0].connect({ rank: 0, world: 2, peers, timeoutMs: 300 })).rejects.toMatchObject({ code: 'TRAINER_ERR_CONNECT_TIMEOUT', details: { missing: [1] } });
    expect(Date.now() - t0).toBeLessThan(3_000);
    await Promise.all(planes.map((p) => p.close()));
    await expect(planes[1].connect({ rank: 1, world: 2, peers: [{ rank: 0, host: '127.0.0.1', port: peers[0].port }], timeoutMs: 300 }))
      .rejects.toMatchObject({ code: 'TRAINER_ERR_CONNECT_TIMEOUT' });
  });

  it('refuses a nonsense topology', async () => {
    const p = await DataPlane.listen({ token: TEST_TOKEN });
    await expect(p.connect({ rank: 2, world: 2, peers: [] })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await p.close();
    const q = await DataPlane.listen({ token: TEST_TOKEN });
    await expect(q.connect({ rank: 0, world: 2, peers: [{ rank: 0, host: 'x', port: 1 }] })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    await q.close();
  });
});
