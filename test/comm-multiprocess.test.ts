import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * Collectives across real processes (one DataPlane per process, as the launcher runs them), and
 * what the survivors see when a rank is killed. Every process started here is killed in
 * afterEach, also when a test fails.
 */
const WORKER = join(dirname(fileURLToPath(import.meta.url)), '../packages/comm/dist/testing/rank-worker.js');

interface Reply { type: string; id?: number; values?: number[]; digest?: string; info?: { rank: number; host: string; reason: string }; error?: { code: string; message: string; details?: Record<string, unknown> }; host?: string; port?: number }

class Rank {
  readonly child: ChildProcess;
  readonly replies: Reply[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly rank: number) {
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: Reply) => {
      this.replies.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  send(cmd: Record<string, unknown>): void {
    this.child.send(cmd);
  }
  /** The first reply matching `pred`, waiting up to `ms`. */
  async next(pred: (r: Reply) => boolean, ms = 20_000): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.replies.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`rank ${this.rank}: no matching reply within ${ms} ms; got ${JSON.stringify(this.replies)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

const started: Rank[] = [];
afterEach(async () => {
  for (const r of started.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGKILL');
      await new Promise((resolve) => r.child.once('exit', resolve));
    }
  }
});

async function startWorld(world: number, collectiveTimeoutMs = 30_000): Promise<Rank[]> {
  const token = randomBytes(16).toString('hex');
  const ranks = Array.from({ length: world }, (_, r) => new Rank(r));
  started.push(...ranks);
  ranks.forEach((r) => r.send({ type: 'init', rank: r.rank, world, token }));
  const addrs = await Promise.all(ranks.map((r) => r.next((m) => m.type === 'listening')));
  const peers = addrs.map((a, rank) => ({ rank, host: a.host!, port: a.port! }));
  ranks.forEach((r) => r.send({ type: 'connect', peers, collectiveTimeoutMs }));
  await Promise.all(ranks.map((r) => r.next((m) => m.type === 'connected')));
  return ranks;
}

function rankInput(rank: number, length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => ((i * 31 + rank * 7) % 101) - 50 + rank / 4);
}

describe('comm across processes', () => {
  it('4 processes: ring and direct, plain and registered buffers agree; every rank gets the same bytes (fp32, bf16)', async () => {
    const ranks = await startWorld(4);
    const length = 3_000_001; // 12 MiB: shards of two 2 MiB pieces, one shorter
    let id = 100;
    const digests = new Map<string, string>();
    for (const codec of ['fp32', 'bf16'] as const) {
      for (const algorithm of ['ring', 'direct'] as const) {
        for (const registered of [false, true]) {
          const my = ++id;
          ranks.forEach((r) => r.send({ type: 'allReduce', id: my, length, codec, op: 'sum', algorithm, registered, digest: true }));
          const replies = await Promise.all(ranks.map((r) => r.next((m) => m.id === my, 60_000)));
          for (const rep of replies) expect(rep.type, JSON.stringify(rep.error)).toBe('result');
          expect(new Set(replies.map((x) => x.digest)).size).toBe(1); // identical bytes on every rank
          digests.set(`${codec}/${algorithm}/${registered}`, replies[0].digest!);
          const inputs = [0, 1, 2, 3].map((r) => rankInput(r, length));
          replies[0].values!.forEach((v, k) => {
            const i = k * 9973;
            const want = inputs.reduce((acc, x) => acc + x[i], 0);
            expect(Math.abs(v - want)).toBeLessThanOrEqual((codec === 'fp32' ? 1e-5 : 2 ** -7) * 200);
          });
        }
      }
    }
    // registered buffers change nothing; for fp32 the two algorithms form the same sums
    for (const codec of ['fp32', 'bf16']) for (const alg of ['ring', 'direct']) expect(digests.get(`${codec}/${alg}/true`)).toBe(digests.get(`${codec}/${alg}/false`));
    expect(digests.get('fp32/direct/false')).toBe(digests.get('fp32/ring/false'));
  }, 120_000);

  it('all-reduces, all-gathers and broadcasts between 3 processes', async () => {
    const ranks = await startWorld(3);
    const length = 100_003;
    ranks.forEach((r) => r.send({ type: 'allReduce', id: 1, length, codec: 'fp32', op: 'sum' }));
    const sums = await Promise.all(ranks.map((r) => r.next((m) => m.id === 1)));
    const inputs = [0, 1, 2].map((r) => rankInput(r, length));
    for (const s of sums) {
      expect(s.error).toBeUndefined();
      expect(s.values).toHaveLength(length);
      // inputs are multiples of 1/4 below 200 in magnitude: every partial sum is exact in fp32
      for (const i of [0, 1, 50_000, length - 1]) expect(s.values![i]).toBe(inputs[0][i] + inputs[1][i] + inputs[2][i]);
      expect(s.values).toEqual(sums[0].values);
    }

    ranks.forEach((r) => r.send({ type: 'allGather', id: 2, length: 1001 }));
    const gathered = await Promise.all(ranks.map((r) => r.next((m) => m.id === 2)));
    for (const g of gathered) expect(g.values).toEqual(Array.from(rankInput(0, 1001)));

    ranks.forEach((r) => r.send({ type: 'broadcast', id: 3, length: 5000, root: 2 }));
    const bc = await Promise.all(ranks.map((r) => r.next((m) => m.id === 3)));
    for (const b of bc) expect(b.values).toEqual(Array.from(rankInput(2, 5000)));
  });

  it('a killed rank is reported by name to every survivor, which fail instead of hanging', async () => {
    const ranks = await startWorld(3);
    // ranks 0 and 2 enter a collective that rank 1 will never join, then rank 1 dies
    ranks[0].send({ type: 'allReduce', id: 7, length: 1000, codec: 'fp32', op: 'sum' });
    ranks[2].send({ type: 'allReduce', id: 7, length: 1000, codec: 'fp32', op: 'sum' });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    ranks[1].child.kill('SIGKILL');
    for (const r of [ranks[0], ranks[2]]) {
      const lost = await r.next((m) => m.type === 'peer-lost');
      expect(lost.info?.rank).toBe(1);
      const failed = await r.next((m) => m.id === 7);
      expect(failed.error?.code).toBe('TRAINER_ERR_PEER_LOST');
      expect(failed.error?.message).toMatch(/rank 1 \(/);
    }
    expect(Date.now() - t0).toBeLessThan(10_000); // far below the 30 s collective timeout
  });
});
