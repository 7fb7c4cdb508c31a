import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Codec } from '../codecs/codec.js';
import { shardRange } from './shard.js';
import { makeWorld, type TestWorld } from '../testing/test-world.js';
import { silentLogger } from '../transport/logger.js';

/** Deterministic pseudo-random values in [-1, 1) for (rank, index, salt). */
function values(rank: number, length: number, salt: number): Float32Array {
  const out = new Float32Array(length);
  let s = (rank + 1) * 7919 + salt * 104729;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const EPS: Record<Codec, number> = { fp32: 2 ** -22, bf16: 2 ** -8, fp16: 2 ** -11 };

/** Exact (float64) reference reduction, and the sum of magnitudes for the error bound. */
function reference(inputs: Float32Array[], op: 'sum' | 'avg' | 'max'): { want: Float64Array; scale: Float64Array } {
  const n = inputs[0].length;
  const want = new Float64Array(n);
  const scale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let acc = op === 'max' ? -Infinity : 0;
    let mag = 0;
    for (const x of inputs) {
      acc = op === 'max' ? Math.max(acc, x[i]) : acc + x[i];
      mag += Math.abs(x[i]);
    }
    want[i] = op === 'avg' ? acc / inputs.length : acc;
    scale[i] = op === 'avg' ? mag / inputs.length : op === 'max' ? Math.abs(acc) : mag;
  }
  return { want, scale };
}

function expectClose(got: Float32Array, want: Float64Array, scale: Float64Array, tol: number, what: string): void {
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol * scale[i] + 1e-30)) throw new Error(`${what}: element ${i} = ${got[i]}, want ${want[i]} (error ${err}, bound ${tol * scale[i]})`);
  }
}

function expectIdenticalAcrossRanks(bufs: Float32Array[], what: string): void {
  const first = Buffer.from(bufs[0].buffer, bufs[0].byteOffset, bufs[0].byteLength);
  for (let r = 1; r < bufs.length; r++) {
    if (!first.equals(Buffer.from(bufs[r].buffer, bufs[r].byteOffset, bufs[r].byteLength))) throw new Error(`${what}: rank ${r} differs from rank 0`);
  }
}

const LENGTHS = [0, 1, 3, 7, 100, 1001, 5003];
const PIECE_BYTES = 1024; // 256 elements per piece, so long buffers take many pipelined pieces

for (const [world, algorithm] of [1, 2, 3, 4, 5].flatMap((n) => (['ring', 'direct'] as const).map((a) => [n, a] as const))) {
  describe(`collectives, world ${world}, ${algorithm}`, () => {
    let w: TestWorld;
    beforeAll(async () => {
      w = await makeWorld(world, { pieceBytes: PIECE_BYTES, algorithm });
    });
    afterAll(async () => {
      await w.close();
    });

    for (const codec of ['fp32', 'bf16', 'fp16'] as Codec[]) {
      for (const op of ['sum', 'avg', 'max'] as const) {
        it(`allReduce ${op} ${codec} equals the reference for lengths ${LENGTHS.join(',')}, identical on every rank`, async () => {
          for (const length of LENGTHS) {
            const inputs = w.comms.map((_, r) => values(r, length, length));
            const bufs = inputs.map((x) => x.slice());
            await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r], { op, codec })));
            const { want, scale } = reference(inputs, op);
            // each hop may round once, the owner once more: (world + 1) roundings of at most eps each
            const tol = world === 1 ? 0 : (world + 1) * EPS[codec];
            for (let r = 0; r < world; r++) expectClose(bufs[r], want, scale, tol, `rank ${r} length ${length}`);
            expectIdenticalAcrossRanks(bufs, `length ${length}`);
          }
        });
      }
    }

    it('allReduce of integers is exact and deterministic run to run', async () => {
      const length = 4099;
      const run = async (): Promise<Float32Array[]> => {
        const bufs = w.comms.map((_, r) => Float32Array.from({ length }, (_, i) => (i % 97) * (r + 1)));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
        return bufs;
      };
      const a = await run();
      const total = (world * (world + 1)) / 2;
      for (let i = 0; i < length; i++) expect(a[0][i]).toBe((i % 97) * total);
      const rnd = async (): Promise<Float32Array> => {
        const bufs = w.comms.map((_, r) => values(r, 3001, 99));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
        return bufs[0];
      };
      expect(Array.from(await rnd())).toEqual(Array.from(await rnd()));
    });

    it('runs several collectives concurrently, matched by sequence number', async () => {
      const lengths = [10, 3000, 1, 777];
      const bufs = w.comms.map((_, r) => lengths.map((n, k) => values(r, n, k)));
      const inputs = bufs.map((list) => list.map((b) => b.slice()));
      await Promise.all(w.comms.flatMap((c, r) => bufs[r].map((b) => c.worldGroup.allReduce(b))));
      lengths.forEach((_, k) => {
        const { want, scale } = reference(inputs.map((l) => l[k]), 'sum');
        for (let r = 0; r < world; r++) expectClose(bufs[r][k], want, scale, world * EPS.fp32, `buffer ${k}`);
      });
    });

    it('reduceScatter returns each rank its shardRange of the reduction', async () => {
      for (const length of LENGTHS) {
        for (const op of ['sum', 'avg'] as const) {
          const inputs = w.comms.map((_, r) => values(r, length, 7));
          const bufs = inputs.map((x) => x.slice());
          const shards = await Promise.all(w.comms.map((c, r) => c.worldGroup.reduceScatter(bufs[r], { op })));
          const { want, scale } = reference(inputs, op);
          for (let r = 0; r < world; r++) {
            const { start, end } = shardRange(length, world, r);
            expect(shards[r].length).toBe(end - start);
            expectClose(shards[r], want.subarray(start, end), scale.subarray(start, end), (world + 1) * EPS.fp32, `rank ${r}`);
          }
        }
      }
    });

    for (const codec of ['fp32', 'bf16', 'fp16'] as Codec[]) {
      it(`allGather ${codec} concatenates the shards, identically on every rank`, async () => {
        for (const length of LENGTHS) {
          const full = values(42, length, 1);
          const outs = await Promise.all(w.comms.map((c, r) => {
            const { start, end } = shardRange(length, world, r);
            return c.worldGroup.allGather(full.slice(start, end), length, { codec });
          }));
          for (const out of outs) {
            expect(out.length).toBe(length);
            expectClose(out, Float64Array.from(full), Float64Array.from(full, Math.abs), codec === 'fp32' || world === 1 ? 0 : EPS[codec], 'allGather');
          }
          expectIdenticalAcrossRanks(outs, `allGather length ${length}`);
        }
      });
    }

    it('broadcast copies the root buffer everywhere, for every root, Float32Array and Uint8Array', async () => {
      for (let root = 0; root < world; root++) {
        const f = w.comms.map((_, r) => (r === root ? values(root, 2049, 5) : new Float32Array(2049)));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.broadcast(f[r], root)));
        for (const b of f) expect(Array.from(b)).toEqual(Array.from(f[root]));
        const u = w.comms.map((_, r) => (r === root ? Uint8Array.from({ length: 3001 }, (_, i) => (i * 7 + root) & 255) : new Uint8Array(3001)));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.broadcast(u[r], root)));
        for (const b of u) expect(Buffer.from(b).equals(Buffer.from(u[root]))).toBe(true);
      }
    });

    it('barrier waits for every rank', async () => {
      const order: string[] = [];
      await Promise.all(w.comms.map(async (c, r) => {
        await new Promise((res) => setTimeout(res, r === world - 1 ? 100 : 0));
        order.push(`in${r}`);
        await c.worldGroup.barrier();
        order.push(`out${r}`);
      }));
      const firstOut = order.findIndex((s) => s.startsWith('out'));
      expect(order.slice(0, firstOut).length).toBe(world);
    });

    if (world >= 2) {
      it('send/recv match by source, tag and order, before or after the recv is posted', async () => {
        const g = w.comms.map((c) => c.worldGroup);
        const a = values(1, 1000, 1);
        const b = Uint8Array.from([1, 2, 3]);
        const early = g[0].send(a, 1, { tag: 5 });
        const early2 = g[0].send(b, 1, { tag: 6 });
        await Promise.all([early, early2]);
        const gotB = new Uint8Array(3);
        const gotA = new Float32Array(1000);
        await g[1].recv(gotB, 0, { tag: 6 });
        await g[1].recv(gotA, 0, { tag: 5 });
        expect(Array.from(gotA)).toEqual(Array.from(a));
        expect(Array.from(gotB)).toEqual([1, 2, 3]);
        // recv first, then send, back from the last rank to rank 0; two messages in order
        const into = [new Float32Array(4), new Float32Array(4)];
        const recvs = Promise.all(into.map((x) => g[0].recv(x, world - 1)));
        await g[world - 1].send(Float32Array.from([1, 2, 3, 4]), 0);
        await g[world - 1].send(Float32Array.from([5, 6, 7, 8]), 0);
        await recvs;
        expect(into.map((x) => Array.from(x))).toEqual([[1, 2, 3, 4], [5, 6, 7, 8]]);
      });
    }

    if (world >= 3) {
      it('subgroups run independently, in any rank order, and refuse non-members', async () => {
        const evens = Array.from({ length: world }, (_, i) => i).filter((i) => i % 2 === 0).reverse();
        const odds = Array.from({ length: world }, (_, i) => i).filter((i) => i % 2 === 1);
        const ge = w.comms.map((c) => c.newGroup(evens));
        const go = w.comms.map((c) => c.newGroup(odds));
        expect(ge[evens[0]].rank).toBe(0);
        expect(ge[1].rank).toBe(-1);
        await expect(ge[1].allReduce(new Float32Array(3))).rejects.toMatchObject({ code: 'TRAINER_ERR_NOT_GROUP_MEMBER' });
        const bufs = w.comms.map((_, r) => Float32Array.from({ length: 1234 }, (_, i) => i + r * 10_000));
        await Promise.all(w.comms.map((_, r) => (r % 2 === 0 ? ge[r] : go[r]).allReduce(bufs[r])));
        const sumOf = (members: number[], i: number): number => members.reduce((acc, r) => acc + i + r * 10_000, 0);
        for (let r = 0; r < world; r++) {
          const members = r % 2 === 0 ? evens : odds;
          for (const i of [0, 617, 1233]) expect(bufs[r][i]).toBe(sumOf(members, i));
        }
        // a broadcast in a subgroup uses group ranks: root 0 of `evens` is its first listed rank
        const bc = w.comms.map((_, r) => Float32Array.from([r, r]));
        await Promise.all(evens.map((r) => ge[r].broadcast(bc[r], 0)));
        for (const r of evens) expect(Array.from(bc[r])).toEqual([evens[0], evens[0]]);
      });
    }
  });
}

describe('ring and direct', () => {
  it('give bit-identical fp32 results (the same summation order), for every op and world 3-5', async () => {
    for (const world of [3, 4, 5]) {
      const w = await makeWorld(world, { pieceBytes: PIECE_BYTES });
      try {
        for (const op of ['sum', 'avg', 'max'] as const) {
          const inputs = w.comms.map((_, r) => values(r, 5003, 11));
          const ring = inputs.map((x) => x.slice());
          const direct = inputs.map((x) => x.slice());
          await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(ring[r], { op, algorithm: 'ring' })));
          await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(direct[r], { op, algorithm: 'direct' })));
          expectIdenticalAcrossRanks([ring[0], direct[0]], `world ${world} ${op}`);
        }
      } finally {
        await w.close();
      }
    }
  });

  it('ranks that pick different algorithms get a mismatch naming both, not a hang; auto is direct at world 4', async () => {
    const w = await makeWorld(4, { pieceBytes: PIECE_BYTES });
    try {
      const results = await Promise.allSettled(w.comms.map((c, r) => c.worldGroup.allReduce(new Float32Array(100), r === 0 ? { algorithm: 'ring' } : {})));
      for (const res of results) {
        expect(res.status).toBe('rejected');
        const err = (res as PromiseRejectedResult).reason as { code: string; message: string };
        expect(err.code).toBe('TRAINER_ERR_COLLECTIVE_MISMATCH');
        expect(err.message).toMatch(/allReduce:sum\(/);
        expect(err.message).toMatch(/allReduce:sum@direct\(/);
      }
      await expect(w.comms[0].newGroup([0, 1, 2, 3]).allReduce(new Float32Array(4), { algorithm: 'tree' as 'ring' })).rejects.toMatchObject({ code: 'TRAINER_ERR_INVALID_ARGUMENT' });
    } finally {
      await w.close();
    }
  });
});

describe('registered buffers (Communicator.allocBuffer)', () => {
  it('give bit-identical results to plain arrays: every codec and op, ring and direct, worlds 2-4', async () => {
    for (const world of [2, 3, 4]) {
      const w = await makeWorld(world, { pieceBytes: PIECE_BYTES });
      try {
        for (const algorithm of ['ring', 'direct'] as const) {
          for (const codec of ['fp32', 'bf16', 'fp16'] as Codec[]) {
            for (const op of ['sum', 'avg', 'max'] as const) {
              const inputs = w.comms.map((_, r) => values(r, 5003, 3));
              const plain = inputs.map((x) => x.slice());
              const registered = w.comms.map((c, r) => {
                const b = c.allocBuffer(5003);
                b.set(inputs[r]);
                return b;
              });
              await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(plain[r], { op, codec, algorithm })));
              await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(registered[r], { op, codec, algorithm })));
              expectIdenticalAcrossRanks([plain[0], registered[0]], `world ${world} ${algorithm} ${codec} ${op}`);
              expectIdenticalAcrossRanks(registered, `world ${world} ${algorithm} ${codec} ${op} registered`);
            }
            const shards = await Promise.all(w.comms.map((c, r) => {
              const b = c.allocBuffer(1001);
              b.set(values(r, 1001, 4));
              return c.worldGroup.reduceScatter(b, { codec, algorithm });
            }));
            const plainShards = await Promise.all(w.comms.map((c, r) => c.worldGroup.reduceScatter(values(r, 1001, 4), { codec, algorithm })));
            shards.forEach((sh, r) => expect(Array.from(sh)).toEqual(Array.from(plainShards[r])));
          }
        }
      } finally {
        await w.close();
      }
    }
  });

  it('are zeroed, refuse bad lengths with a coded error, and work with the default piece size', async () => {
    const w = await makeWorld(2);
    try {
      const b = w.comms[0].allocBuffer(10);
      expect(Array.from(b)).toEqual(new Array(10).fill(0));
      expect(w.comms[0].allocBuffer(0).length).toBe(0);
      for (const bad of [-1, 1.5, 2 ** 40]) expect(() => w.comms[0].allocBuffer(bad)).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
      const length = (4 << 20) / 4 + 3;
      const bufs = w.comms.map((c, r) => {
        const x = c.allocBuffer(length);
        for (let i = 0; i < length; i++) x[i] = ((i * 7 + r) % 1000) - 500;
        return x;
      });
      await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
      for (let i = 0; i < length; i += 997) expect(bufs[1][i]).toBe(((i * 7) % 1000) - 500 + ((i * 7 + 1) % 1000) - 500);
    } finally {
      await w.close();
    }
  });
});

describe('large buffers with the default piece size', () => {
  it('are reduced exactly while they arrive (several reads per piece), worlds 2-4, ring and direct', async () => {
    for (const [world, algorithm] of [[2, 'ring'], [3, 'ring'], [3, 'direct'], [4, 'direct']] as const) {
      const w = await makeWorld(world, { algorithm });
      try {
        const length = (4 << 20) / 4 + 3; // 4 MiB + 3 elements: several direct reads per 2 MiB piece
        const bufs = w.comms.map((_, r) => Float32Array.from({ length }, (_, i) => ((i * 7 + r) % 1000) - 500));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
        for (let i = 0; i < length; i += 997) {
          let want = 0;
          for (let r = 0; r < world; r++) want += ((i * 7 + r) % 1000) - 500;
          if (bufs[0][i] !== want) throw new Error(`world ${world} ${algorithm} element ${i}: ${bufs[0][i]} != ${want}`);
        }
        for (let r = 1; r < world; r++) expect(Buffer.from(bufs[r].buffer).equals(Buffer.from(bufs[0].buffer))).toBe(true);
      } finally {
        await w.close();
      }
    }
  });
});

describe('same-machine transport', () => {
  const connected = async (opts: { localTransport?: 'unix' | 'tcp' }) => {
    const seen: { rank: number }[] = [];
    const logger = () => ({ ...silentLogger, info: (obj: object, msg?: string) => { if (msg === 'data plane connected') seen.push(obj as { rank: number }); } });
    const w = await makeWorld(3, { ...opts, logger });
    const data = Float32Array.from([1, 2, 3, 4, 5]);
    await Promise.all(w.comms.map((c) => c.worldGroup.allReduce(new Float32Array(data))));
    await w.close();
    return seen.sort((a, b) => a.rank - b.rank);
  };

  it('dials peers on this machine over Unix sockets by default, over TCP when connect() asks (pipeline stages)', async () => {
    expect(await connected({})).toEqual([0, 1, 2].map((rank) => ({ rank, world: 3, unix: 2, tcp: 0 })).map((o) => expect.objectContaining(o)));
    expect(await connected({ localTransport: 'tcp' })).toEqual([0, 1, 2].map((rank) => ({ rank, world: 3, unix: 0, tcp: 2 })).map((o) => expect.objectContaining(o)));
  });
});
