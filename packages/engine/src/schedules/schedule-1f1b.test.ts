import { describe, expect, it } from 'vitest';
import { maxInFlight, schedule1F1B, simulatePipeline } from './schedule-1f1b.js';

const f = (micro: number) => ({ kind: 'forward', micro });
const b = (micro: number) => ({ kind: 'backward', micro });

describe('1F1B schedule', () => {
  it('has the warmup / steady / cooldown shape (P = 4, M = 8)', () => {
    expect(schedule1F1B(4, 0, 8)).toEqual([f(0), f(1), f(2), f(3), b(0), f(4), b(1), f(5), b(2), f(6), b(3), f(7), b(4), b(5), b(6), b(7)]);
    expect(schedule1F1B(4, 3, 8)).toEqual([f(0), b(0), f(1), b(1), f(2), b(2), f(3), b(3), f(4), b(4), f(5), b(5), f(6), b(6), f(7), b(7)]);
    expect(schedule1F1B(4, 1, 2)).toEqual([f(0), f(1), b(0), b(1)]);
  });

  for (const P of [2, 4]) {
    for (const M of [1, 4, 8]) {
      it(`P = ${P}, M = ${M}: every micro-batch forward then backward once, at most P - s in flight, no deadlock`, () => {
        for (let s = 0; s < P; s++) {
          const plan = schedule1F1B(P, s, M);
          expect(plan.filter((a) => a.kind === 'forward').map((a) => a.micro)).toEqual([...Array(M).keys()]);
          expect(plan.filter((a) => a.kind === 'backward').map((a) => a.micro)).toEqual([...Array(M).keys()]);
          for (const a of plan.filter((x) => x.kind === 'backward')) {
            expect(plan.findIndex((x) => x.kind === 'forward' && x.micro === a.micro)).toBeLessThan(plan.indexOf(a));
          }
          expect(maxInFlight(plan)).toBe(Math.min(P - s, M));
        }
        const sim = simulatePipeline(P, M);
        // Unit-time model: 2 (M + P - 1) ticks, of which each stage is busy 2M.
        expect(sim.ticks).toBe(2 * (M + P - 1));
        const bubble = 1 - (2 * M) / sim.ticks;
        expect(bubble).toBeCloseTo((P - 1) / (M + P - 1), 10);
      });
    }
  }

  it('refuses nonsense', () => {
    expect(() => schedule1F1B(2, 2, 4)).toThrow(RangeError);
    expect(() => schedule1F1B(2, 0, 0)).toThrow(RangeError);
  });
});
