import { describe, expect, it } from 'vitest';
import { Rng, detLog, detLogPair, fillNormals, hashString, normalAt, philox4x32 } from './prng.js';

function stats(v: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / v.length) };
}

/** Pearson correlation of two equally long samples. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const sa = stats(a);
  const sb = stats(b);
  let c = 0;
  for (let i = 0; i < a.length; i++) c += (a[i] - sa.mean) * (b[i] - sb.mean);
  return c / a.length / (sa.std * sb.std);
}

/** Standard normal CDF (Abramowitz-Stegun 26.2.17, |error| < 7.5e-8): test-only, Math.exp is fine here. */
function normalCdf(x: number): number {
  const t = 1 / (1 + 0.2316419 * Math.abs(x));
  const poly = t * (0.31938153 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
  const tail = (Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI)) * poly;
  return x >= 0 ? 1 - tail : tail;
}

function normals(seed: number, stream: number, start: number, n: number): Float64Array {
  const out = new Float32Array(n);
  fillNormals(out, seed, stream, start);
  return Float64Array.from(out);
}

describe('philox4x32', () => {
  it("matches Random123's known-answer vectors", () => {
    const out = new Uint32Array(4);
    const hex = (): string[] => Array.from(out, (w) => w.toString(16).padStart(8, '0'));
    philox4x32(0, 0, 0, 0, 0, 0, out);
    expect(hex()).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    philox4x32(ones, ones, ones, ones, ones, ones, out);
    expect(hex()).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
    expect(hex()).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });
});

describe('normalAt / fillNormals (counter-based normals)', () => {
  const N = 200_000;
  const z = normals(11, hashString('wte.weight'), 0, N);

  it('is N(0, 1): mean, std, skewness, kurtosis and a Kolmogorov-Smirnov check', () => {
    const { mean, std } = stats(z);
    expect(Math.abs(mean)).toBeLessThan(4 / Math.sqrt(N));
    expect(Math.abs(std - 1)).toBeLessThan(4 * Math.sqrt(0.5 / N));
    let m3 = 0;
    let m4 = 0;
    for (const x of z) {
      m3 += x ** 3;
      m4 += x ** 4;
    }
    expect(Math.abs(m3 / N)).toBeLessThan(4 * Math.sqrt(15 / N)); // skewness 0, sd sqrt(15/N)
    expect(Math.abs(m4 / N - 3)).toBeLessThan(4 * Math.sqrt(96 / N)); // kurtosis 3, sd sqrt(96/N)
    const sorted = Float64Array.from(z).sort();
    let d = 0;
    sorted.forEach((x, i) => {
      const f = normalCdf(x);
      d = Math.max(d, Math.abs(f - i / N), Math.abs(f - (i + 1) / N));
    });
    expect(d).toBeLessThan(1.63 / Math.sqrt(N)); // KS critical value at the 1% level
    // Tails: the share beyond 3 sigma is 0.27%.
    const beyond3 = z.filter((x) => Math.abs(x) > 3).length / N;
    expect(Math.abs(beyond3 - 0.0027)).toBeLessThan(5 * Math.sqrt(0.0027 / N));
  });

  it('leaves neighbouring elements, seeds and streams uncorrelated', () => {
    const limit = 5 / Math.sqrt(N / 2);
    const even = z.filter((_, i) => i % 2 === 0);
    const odd = z.filter((_, i) => i % 2 === 1);
    expect(Math.abs(correlation(even, odd))).toBeLessThan(limit); // the two halves of a polar draw
    expect(Math.abs(correlation(even.map((x) => x * x), odd.map((x) => x * x)))).toBeLessThan(limit); // ... and their magnitudes
    expect(Math.abs(correlation(odd.subarray(0, -1), even.subarray(1)))).toBeLessThan(limit); // across pairs
    const n = 50_000;
    const lim = 5 / Math.sqrt(n);
    const base = z.subarray(0, n);
    expect(Math.abs(correlation(base, normals(12, hashString('wte.weight'), 0, n)))).toBeLessThan(lim); // next seed
    expect(Math.abs(correlation(base, normals(11 + 2 ** 32, hashString('wte.weight'), 0, n)))).toBeLessThan(lim); // seed's high word
    expect(Math.abs(correlation(base, normals(11, hashString('wpe.weight'), 0, n)))).toBeLessThan(lim); // another stream
    expect(Math.abs(correlation(base, normals(11, hashString('wte.weight'), 2 ** 32, n)))).toBeLessThan(lim); // index's high word
  });

  it('gives each element from (seed, stream, index) alone, whatever range computes it', () => {
    const stream = hashString('h.0.mlp.c_fc.weight');
    const all = new Float32Array(101);
    fillNormals(all, 3, stream, 1000);
    for (const [a, b] of [[0, 101], [1, 2], [1, 100], [50, 51], [7, 8], [0, 1], [99, 101]]) {
      const part = new Float32Array(b - a);
      fillNormals(part, 3, stream, 1000 + a);
      expect(part).toEqual(all.subarray(a, b));
    }
    for (let k = 0; k < all.length; k++) expect(Math.fround(normalAt(3, stream, 1000 + k))).toBe(all[k]);
    const scaled = new Float32Array(10);
    fillNormals(scaled, 3, stream, 1003, 0.02);
    scaled.forEach((x, k) => expect(x).toBe(Math.fround(0.02 * normalAt(3, stream, 1003 + k))));
    // Far indices (a 27 GB tensor's tail) work and do not repeat the start.
    const far = 2 ** 40 + 1;
    expect(normalAt(3, stream, far)).not.toBe(normalAt(3, stream, 1));
    expect(normalAt(3, stream, far)).toBe(normalAt(3, stream, far));
  });

  it('pins values, high index and seed words included (a change alters every initial model)', () => {
    const s = hashString('wte.weight');
    expect([0, 1, 2, 3, 2 ** 40, 2 ** 40 + 1, 2 ** 53 - 2].map((i) => normalAt(0, s, i))).toEqual([
      -0.4387778444531831, -0.10150609890779308, 0.17911227688164513, -0.3571659483701852, -0.11879616249469024, 0.7450996086114042,
      0.17587682358498175,
    ]);
    expect(normalAt(-1, 7, 5)).toBe(1.3115151037479182);
    expect(normalAt(2 ** 40, 7, 5)).toBe(-0.2511367016060386);
  });

  it('rejects indices that are not non-negative safe integers', () => {
    expect(() => normalAt(1, 0, -1)).toThrow(/not integers/);
    expect(() => normalAt(1, 0, 1.5)).toThrow(/not integers/);
    expect(() => fillNormals(new Float32Array(4), 1, 0, 2 ** 53 - 2)).toThrow(/not integers/);
  });
});

describe('Rng', () => {
  it('gives uniform values in [0, 1) and standard normals', () => {
    const rng = new Rng(42);
    const u = Float32Array.from({ length: 100_000 }, () => rng.uniform());
    expect(u.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Math.abs(stats(u).mean - 0.5)).toBeLessThan(0.01);
    const n = Float32Array.from({ length: 100_000 }, () => rng.normal());
    const s = stats(n);
    expect(Math.abs(s.mean)).toBeLessThan(0.02);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.02);
  });

  it('separates streams and seeds', () => {
    expect(new Rng(1, 0).nextU32()).not.toBe(new Rng(1, 1).nextU32());
    expect(new Rng(1).nextU32()).not.toBe(new Rng(2).nextU32());
    expect(new Rng(2 ** 40).nextU32()).not.toBe(new Rng(0).nextU32());
  });
});

describe('detLog', () => {
  it('computes log with basic arithmetic to ~1e-15', () => {
    for (const x of [1e-300, 1e-10, 0.3, 0.5, 0.7071, 1, 1.5, 2, 10, 12345.678, 1e300]) {
      expect(Math.abs(detLog(x) - Math.log(x))).toBeLessThan(1e-13 * Math.max(1, Math.abs(Math.log(x))));
    }
  });

  it('detLogPair gives detLog bit for bit', () => {
    const rng = new Rng(9);
    const out = new Float64Array(2);
    const xs = [1e-300, 2 ** -63, 1e-10, 0.5, Math.SQRT1_2, Math.SQRT2, 1, 1 - 2 ** -53, 3, 1e300];
    for (let k = 0; k < 20_000; k++) xs.push(rng.uniform() * 2 ** (60 * rng.uniform() - 40));
    for (let k = 0; k + 1 < xs.length; k++) {
      detLogPair(xs[k], xs[k + 1], out);
      expect(out[0]).toBe(detLog(xs[k]));
      expect(out[1]).toBe(detLog(xs[k + 1]));
    }
  });
});
