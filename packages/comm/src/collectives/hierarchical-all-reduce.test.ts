import { afterEach, describe, expect, it } from 'vitest';
import { makeWorld, type TestWorld } from '../testing/test-world.js';
import { machineLayout } from './hierarchical-all-reduce.js';

/** Deterministic values in [-1, 1) for (rank, index). */
function values(rank: number, length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(rank * 1000 + i * 0.37) * (1 + (i % 7)));
}

let w: TestWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

/** Bytes every rank sent to ranks on another machine. */
function crossMachineBytes(world: TestWorld, machines: string[]): number {
  let total = 0;
  for (const [r, c] of world.comms.entries()) for (let p = 0; p < machines.length; p++) if (machines[p] !== machines[r]) total += c.bytesSentTo(p);
  return total;
}

describe('hierarchical all-reduce (machines x ranks per machine)', () => {
  it('groups ranks by machine only when every machine holds the same number (2+) of the group', () => {
    const on = (names: string) => (r: number) => names[r];
    expect(machineLayout([0, 1, 2, 3], on('aabb'))).toEqual([[0, 1], [2, 3]]);
    expect(machineLayout([0, 1, 2, 3], on('abab'))).toEqual([[0, 2], [1, 3]]);
    expect(machineLayout([0, 1, 2, 3], on('aaab'))).toBeNull();
    expect(machineLayout([0, 1, 2, 3], on('abcd'))).toBeNull(); // one rank per machine: the flat ring is the cross ring
    expect(machineLayout([0, 1], on('aa'))).toBeNull();
  });

  for (const machines of [['a', 'a', 'b', 'b'], ['a', 'b', 'a', 'b'], ['a', 'a', 'a', 'b', 'b', 'b']]) {
    it(`${machines.join('')}: the flat ring's sums within fp32 rounding, identical on every rank, and fewer bytes across machines`, async () => {
      const world = machines.length;
      w = await makeWorld(world, { machines, pieceBytes: 4096 });
      expect(w.comms.every((c) => c.worldGroup.hierarchical)).toBe(true);
      const n = 10_007;
      for (const op of ['sum', 'avg'] as const) {
        const flat = w.comms.map((_, r) => values(r, n));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(flat[r], { op, algorithm: 'ring' })));
        const flatBytes = crossMachineBytes(w, machines);
        const hier = w.comms.map((_, r) => values(r, n));
        await Promise.all(w.comms.map((c, r) => c.worldGroup.allReduce(hier[r], { op })));
        const hierBytes = crossMachineBytes(w, machines) - flatBytes;
        for (let r = 1; r < world; r++) expect(Buffer.from(hier[r].buffer).equals(Buffer.from(hier[0].buffer)), `rank ${r}`).toBe(true);
        const inputs = w.comms.map((_, r) => values(r, n));
        let worst = 0;
        for (let i = 0; i < n; i++) {
          let mag = 0;
          for (const x of inputs) mag += Math.abs(x[i]);
          worst = Math.max(worst, Math.abs(hier[0][i] - flat[0][i]) / (mag * 2 ** -22));
        }
        expect(worst, `${op}: largest difference from the flat ring, in units of 2^-22 x sum |x|`).toBeLessThanOrEqual(world);
        // Across machines: 2(H-1)/H N per machine against a ring that crosses each machine boundary with 2(W-1)/W N.
        const H = new Set(machines).size;
        expect(hierBytes / flatBytes, op).toBeLessThan(((H - 1) / H) / ((world - 1) / world) * 1.05);
        expect(hierBytes, op).toBeGreaterThan(0);
      }
      // Several in flight at once (as backward's buckets are), of different sizes: every phase keeps the call order on every rank.
      const sizes = [5003, 17, 20_011, 1000];
      const many = w.comms.map((_, r) => sizes.map((n2, k) => values(r * 10 + k, n2)));
      await Promise.all(w.comms.flatMap((c, r) => many[r].map((b) => c.worldGroup.allReduce(b))));
      sizes.forEach((n2, k) => {
        for (let r = 1; r < world; r++) expect(Array.from(many[r][k]), `call ${k} rank ${r}`).toEqual(Array.from(many[0][k]));
        const want = w!.comms.map((_, r) => values(r * 10 + k, n2)).reduce((acc, x) => acc.map((v, i) => v + x[i]), new Float64Array(n2));
        many[0][k].forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-4 * world * 7));
      });
      // A sub-group over the same machines goes hierarchical too; 'ring' and 'direct' keep it flat.
      const sub = w.comms.map((c) => c.newGroup(Array.from({ length: world }, (_, r) => r)));
      const bufs = w.comms.map((_, r) => values(r, 513));
      await Promise.all(sub.map((g, r) => g.allReduce(bufs[r])));
      for (let r = 1; r < world; r++) expect(Array.from(bufs[r])).toEqual(Array.from(bufs[0]));
    });
  }

  it('on one machine (every peer at 127.0.0.1) all-reduce stays flat', async () => {
    w = await makeWorld(4);
    expect(w.comms[0].worldGroup.hierarchical).toBe(false);
  });
});
