import { describe, expect, it } from 'vitest';
import { DynamicLossScaler } from './loss-scaler.js';
import { HalfStore, makeStore } from './vector-store.js';

describe('DynamicLossScaler', () => {
  it('halves on overflow (skipping the step), grows after a run of good steps', () => {
    const s = new DynamicLossScaler({ initialScale: 1024, growthInterval: 3 });
    expect(s.update(true, 0)).toBe(true);
    expect(s.scale).toBe(512);
    expect([s.update(false, 1), s.update(false, 2)]).toEqual([false, false]);
    expect(s.scale).toBe(512);
    s.update(false, 3);
    expect(s.scale).toBe(1024);
  });

  it('stops with a coded error when it keeps overflowing at the minimum scale', () => {
    const s = new DynamicLossScaler({ initialScale: 2, minScale: 1, maxSkipsAtMinimum: 3 });
    s.update(true, 0); // 2 -> 1
    s.update(true, 1);
    s.update(true, 2);
    expect(() => s.update(true, 3)).toThrow(/overflowed 3 steps in a row at the minimum loss scale 1/);
  });
});

describe('vector stores', () => {
  it('hold 16-bit values rounded to nearest even and do arithmetic in fp32', () => {
    const bf = new HalfStore('bf16', 4);
    bf.write(0, new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.14159]));
    expect(Array.from(bf.read(0, 4))).toEqual([1, 1, 1 + 2 ** -6, 3.140625]);
    bf.add(0, new Float32Array([0.5, 0, 0, 0]));
    expect(bf.read(0, 1)[0]).toBe(1.5);
    expect(bf.bytes).toBe(8);
    const fp = makeStore('fp16', 3, new Float32Array([65504, 70000, -1e-8]));
    expect(fp.hasNonFinite(0, 1)).toBe(false);
    expect(fp.hasNonFinite(0, 2)).toBe(true); // 70000 overflows fp16
    expect(fp.sumOfSquares(2, 3)).toBe(0); // underflows to -0
    const f32 = makeStore('fp32', 2, new Float32Array([3, 4]));
    expect(f32.sumOfSquares(0, 2)).toBe(25);
  });
});
