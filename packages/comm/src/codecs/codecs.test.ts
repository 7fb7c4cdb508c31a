import { describe, expect, it } from 'vitest';
import { decodeBf16, encodeBf16 } from './bf16.js';
import { getCodec, type Codec } from './codec.js';
import { decodeFp16, encodeFp16 } from './fp16.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fromBits = (b: number): number => ((u32[0] = b), f32[0]);

/** A reproducible stream of awkward fp32 values: random bit patterns plus exact halfway cases. */
function testValues(): Float32Array {
  const out: number[] = [0, -0, 1, -1, 65504, 65519, 65520, 65536, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 6e-8,
    3.4028234663852886e38, -3.4028234663852886e38, Infinity, -Infinity, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11];
  let s = 12345;
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s);
  for (let i = 0; i < 20000; i++) {
    const r = rnd();
    // bias exponents toward the interesting range; keep some raw bit patterns too
    out.push(i % 4 === 0 ? fromBits(r) : fromBits((r & 0x807fffff) | ((((r >>> 23) % 60) + 97) << 23)));
    // exact ties for bf16 (low 16 bits = 0x8000) and for fp16 (low 13 bits = 0x1000)
    if (i % 8 === 1) out.push(fromBits((r & 0xffff0000) | 0x8000));
    if (i % 8 === 2) out.push(fromBits(((r & 0x8fffe000) | 0x1000) >>> 0));
  }
  return Float32Array.from(out.filter((x) => !Number.isNaN(x)));
}

/** Nearest value in a sorted list of candidates, ties to the one whose code is even. */
function nearest(x: number, values: Float64Array, codes: Uint16Array): number {
  let lo = 0;
  let hi = values.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= x) lo = mid;
    else hi = mid;
  }
  const dl = Math.abs(x - values[lo]);
  const dh = Math.abs(values[hi] - x);
  if (dl < dh) return codes[lo];
  if (dh < dl) return codes[hi];
  return (codes[lo] & 1) === 0 ? codes[lo] : codes[hi];
}

/** Every non-NaN positive code of a format, sorted by value, with a "next" above the largest finite. */
function positiveCodes(decode: (code: number) => number, count: number): { values: Float64Array; codes: Uint16Array } {
  const pairs: Array<[number, number]> = [];
  for (let c = 0; c < count; c++) {
    const v = decode(c);
    if (!Number.isNaN(v)) pairs.push([v, c]);
  }
  pairs.sort((a, b) => a[0] - b[0]);
  return { values: Float64Array.from(pairs.map((p) => p[0])), codes: Uint16Array.from(pairs.map((p) => p[1])) };
}

function referenceEncode(x: number, table: { values: Float64Array; codes: Uint16Array }, infCode: number, overflowAt: number, signBit: number): number {
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a >= overflowAt) return sign | infCode;
  return sign | nearest(a, table.values, table.codes);
}

describe('bf16 codec', () => {
  const table = positiveCodes((c) => fromBits(c << 16), 0x7f80);
  // halfway between the largest finite bf16 and 2^128
  const overflowAt = (fromBits(0x7f7f << 16) + 2 ** 128) / 2;

  it('rounds to nearest even, overflowing to infinity, like an exact reference', () => {
    const xs = testValues();
    const got = new Uint16Array(xs.length);
    encodeBf16(xs, got);
    for (let i = 0; i < xs.length; i++) {
      const want = referenceEncode(xs[i], table, 0x7f80, overflowAt, 0x8000);
      if (got[i] !== want) throw new Error(`bf16(${xs[i]}) = ${got[i].toString(16)}, want ${want.toString(16)}`);
    }
    expect(Array.from(got.subarray(0, 2))).toEqual([0, 0x8000]);
  });

  it('handles the textbook cases and keeps NaN a NaN', () => {
    const xs = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4028234663852886e38, NaN, fromBits(0x7fffffff), -Infinity]);
    const got = new Uint16Array(xs.length);
    encodeBf16(xs, got);
    expect(Array.from(got.subarray(0, 4))).toEqual([0x3f80, 0x3f80, 0x3f82, 0x7f80]);
    const back = new Float32Array(xs.length);
    decodeBf16(got, back);
    expect(Number.isNaN(back[4]) && Number.isNaN(back[5])).toBe(true);
    expect(back[6]).toBe(-Infinity);
  });
});

describe('fp16 codec', () => {
  const halfToNumber = (h: number): number => {
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const s = h & 0x8000 ? -1 : 1;
    if (e === 0) return s * m * 2 ** -24;
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * 2 ** (e - 15);
  };
  const table = positiveCodes(halfToNumber, 0x7c00);

  it('rounds to nearest even with subnormals, overflowing to infinity, like an exact reference', () => {
    const xs = testValues();
    const got = new Uint16Array(xs.length);
    encodeFp16(xs, got);
    for (let i = 0; i < xs.length; i++) {
      const want = referenceEncode(xs[i], table, 0x7c00, 65520, 0x8000);
      if (got[i] !== want) throw new Error(`fp16(${xs[i]}) = ${got[i].toString(16)}, want ${want.toString(16)}`);
    }
  });

  it('decodes every half exactly and keeps NaN a NaN', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = new Float32Array(65536);
    decodeFp16(all, back);
    for (let h = 0; h < 65536; h++) {
      const want = halfToNumber(h);
      if (!(Object.is(back[h], want) || (Number.isNaN(want) && Number.isNaN(back[h])))) throw new Error(`half ${h}`);
    }
    const enc = new Uint16Array(3);
    encodeFp16(Float32Array.from([NaN, 65520, 65519.99]), enc);
    expect(Number.isNaN(halfToNumber(enc[0]))).toBe(true);
    expect(Array.from(enc.subarray(1))).toEqual([0x7c00, 0x7bff]);
  });
});

describe('WireCodec fused loops', () => {
  for (const name of ['fp32', 'bf16', 'fp16'] as Codec[]) {
    it(`${name}: reduceIntoWire / reduceIntoLocal / roundTrip agree with encode and decode`, () => {
      const c = getCodec(name);
      const n = 1001;
      const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 100);
      const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 1.3) * 50);
      const wire = new Uint8Array(n * c.bytesPerElement);
      c.encode(b, wire);
      const bDec = new Float32Array(n);
      c.decode(wire, bDec);

      const local = a.slice();
      c.reduceIntoLocal(local, wire, 'sum');
      for (let i = 0; i < n; i++) expect(local[i]).toBe(Math.fround(a[i] + bDec[i]));

      const maxed = a.slice();
      c.reduceIntoLocal(maxed, wire, 'max');
      for (let i = 0; i < n; i++) expect(maxed[i]).toBe(Math.max(a[i], bDec[i]));

      c.reduceIntoWire(a, wire, 'sum');
      const fwd = new Float32Array(n);
      c.decode(wire, fwd);
      const expectRounded = local.slice();
      c.roundTrip(expectRounded);
      expect(Array.from(fwd)).toEqual(Array.from(expectRounded));
      if (name === 'fp32') expect(Array.from(expectRounded)).toEqual(Array.from(local));
      else expect(expectRounded.some((v, i) => v !== local[i])).toBe(true); // lossy codecs do round
    });
  }

  it('refuses an unknown codec with a coded error', () => {
    expect(() => getCodec('int8')).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
  });
});
