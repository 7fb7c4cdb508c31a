import { describe, expect, it } from 'vitest';
import { decodeBf16, encodeBf16 } from './bf16.js';
import { getCodec, type Codec } from './codec.js';
import { foldContributions } from './fp32.js';
import { decodeFp16, encodeFp16 } from './fp16.js';
import { BufferPool } from '../collectives/buffer-pool.js';

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

/** The JS reference of one codec: fp32 <-> 16-bit codes (fp32: the identity). */
const REFERENCE: Record<Codec, { enc(x: Float32Array): Uint16Array | Float32Array; dec(w: Uint16Array | Float32Array): Float32Array }> = {
  fp32: { enc: (x) => x.slice(), dec: (w) => Float32Array.from(w) },
  bf16: { enc: (x) => ((o) => (encodeBf16(x, o), o))(new Uint16Array(x.length)), dec: (w) => ((o) => (decodeBf16(w as Uint16Array, o), o))(new Float32Array(w.length)) },
  fp16: { enc: (x) => ((o) => (encodeFp16(x, o), o))(new Uint16Array(x.length)), dec: (w) => ((o) => (decodeFp16(w as Uint16Array, o), o))(new Float32Array(w.length)) },
};

/** Bit patterns, with every NaN made the same (wasm may return any NaN; only NaN-ness is defined). */
function bits(x: Float32Array): number[] {
  return Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length), (b) => ((b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : b));
}

function codesOf(wire: Uint8Array, codec: Codec, n: number): Uint16Array | Float32Array {
  return codec === 'fp32' ? new Float32Array(wire.buffer, wire.byteOffset, n).slice() : new Uint16Array(wire.buffer, wire.byteOffset, n).slice();
}

describe('WireCodec (SIMD kernels) against the scalar references', () => {
  const pool = new BufferPool(64 * 1024);
  const all = testValues();
  // lengths around the 8-lane blocks, so every tail size runs
  const LENGTHS = [0, 1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 1001];

  for (const name of ['fp32', 'bf16', 'fp16'] as Codec[]) {
    const c = getCodec(name);
    const ref = REFERENCE[name];

    it(`${name}: encode and decode match the reference bit for bit, on awkward values and every tail length`, () => {
      for (let start = 0; start + 4096 <= all.length; start += 4096) {
        const xs = all.subarray(start, start + 4096);
        const wire = pool.acquire(xs.length * c.bytesPerElement);
        c.encode(xs, wire, false);
        expect(Array.from(codesOf(wire, name, xs.length))).toEqual(Array.from(ref.enc(xs)));
        const back = new Float32Array(xs.length);
        c.decode(wire, back);
        expect(bits(back)).toEqual(bits(ref.dec(ref.enc(xs))));
        const kept = xs.slice();
        c.encode(kept, wire, true);
        expect(bits(kept)).toEqual(bits(back));
        pool.release(wire);
      }
      for (const n of LENGTHS) {
        const xs = all.subarray(100, 100 + n);
        const wire = pool.acquire(n * c.bytesPerElement);
        c.encode(xs, wire, false);
        expect(Array.from(codesOf(wire, name, n))).toEqual(Array.from(ref.enc(xs)));
        pool.release(wire);
      }
    });

    for (const op of ['sum', 'max'] as const) {
      it(`${name} ${op}: reduceIntoWire and reduceIntoLocal (with divisor and rounding) equal decode-combine-encode`, () => {
        const combine = (a: number, b: number): number => (op === 'max' ? Math.max(a, b) : Math.fround(a + b));
        for (const n of LENGTHS) {
          const a = all.subarray(3000, 3000 + n);
          const b = all.subarray(7000, 7000 + n);
          const bDec = ref.dec(ref.enc(b));
          const wire = pool.acquire(n * c.bytesPerElement);

          c.encode(b, wire, false);
          c.reduceIntoWire(a, wire, op);
          const summed = Float32Array.from(bDec, (v, i) => combine(v, a[i]));
          // compared decoded, NaNs made equal: a sum of opposite infinities is a NaN of unspecified sign
          expect(bits(ref.dec(codesOf(wire, name, n))), `reduceIntoWire n=${n}`).toEqual(bits(ref.dec(ref.enc(summed))));

          for (const divisor of [1, 3]) {
            for (const round of [false, true]) {
              c.encode(b, wire, false);
              const local = a.slice();
              c.reduceIntoLocal(local, wire, op, divisor, round);
              const want = Float32Array.from(a, (v, i) => Math.fround(combine(v, bDec[i]) / divisor));
              if (round) {
                expect(bits(ref.dec(codesOf(wire, name, n))), `reduceIntoLocal codes n=${n}`).toEqual(bits(ref.dec(ref.enc(want))));
                expect(bits(local), `reduceIntoLocal rounded n=${n}`).toEqual(bits(ref.dec(ref.enc(want))));
              } else {
                expect(bits(local), `reduceIntoLocal n=${n} divisor ${divisor}`).toEqual(bits(want));
              }
            }
          }
          pool.release(wire);
        }
      });
    }
  }

  for (const name of ['fp32', 'bf16', 'fp16'] as Codec[]) {
    it(`${name}: decodeInto, accumulate (same arena, another arena, no arena) and finishInto match the reference`, () => {
      const c = getCodec(name);
      const ref = REFERENCE[name];
      const other = new BufferPool(64 * 1024); // a second pool: its buffers live in another arena
      for (const n of LENGTHS) {
        const a = all.subarray(3000, 3000 + n);
        const b = all.subarray(7000, 7000 + n);
        const aDec = ref.dec(ref.enc(a));
        const bDec = ref.dec(ref.enc(b));
        for (const [label, wireB] of [['same', pool.acquire(n * c.bytesPerElement)], ['other', other.acquire(n * c.bytesPerElement)], ['none', new Uint8Array(n * c.bytesPerElement)]] as const) {
          const acc = pool.acquire(n * 4);
          const wireA = pool.acquire(n * c.bytesPerElement);
          c.encode(a, wireA, false);
          c.decodeInto(wireA, acc);
          expect(bits(new Float32Array(acc.buffer, acc.byteOffset, n)), `decodeInto n=${n}`).toEqual(bits(aDec));
          if (label === 'none') new Uint8Array(wireB.buffer, wireB.byteOffset, wireB.byteLength).set(new Uint8Array(ref.enc(b).buffer));
          else c.encode(b, wireB, false);
          c.accumulate(acc, wireB, 'sum');
          const sum = Float32Array.from(aDec, (v, i) => Math.fround(v + bDec[i]));
          expect(bits(new Float32Array(acc.buffer, acc.byteOffset, n)), `accumulate (${label} arena) n=${n}`).toEqual(bits(sum));
          const own = b.slice();
          const codes = c.finishInto(own, acc, 'sum', 3);
          const want = ref.dec(ref.enc(Float32Array.from(b, (v, i) => Math.fround(Math.fround(v + sum[i]) / 3))));
          expect(bits(own), `finishInto n=${n}`).toEqual(bits(want));
          expect(codes.byteOffset).toBe(acc.byteOffset);
          expect(bits(ref.dec(codesOf(codes, name, n))), `finishInto codes n=${n}`).toEqual(bits(want));
          for (const x of [acc, wireA]) pool.release(x);
          pool.release(wireB);
          other.release(wireB);
        }
      }
    });
  }

  it('fp32 foldContributions sums 1-3 contributions in order, own values last, in one pass; refuses mixed arenas', () => {
    const other = new BufferPool(64 * 1024);
    for (const count of [1, 2, 3]) {
      for (const n of LENGTHS) {
        for (const [op, divisor] of [['sum', 1], ['sum', 4], ['max', 1]] as const) {
          const own = all.subarray(11000, 11000 + n);
          const contributions = [0, 1, 2].slice(0, count).map((k) => all.subarray(2000 * (k + 1), 2000 * (k + 1) + n));
          const wires = contributions.map((c) => {
            const w = pool.acquire(n * 4);
            new Float32Array(w.buffer, w.byteOffset, n).set(c);
            return w;
          });
          const combine = (a: number, b: number): number => (op === 'max' ? Math.max(a, b) : Math.fround(a + b));
          const want = Float32Array.from(own, (v, i) => {
            let t = contributions[0][i];
            for (let k = 1; k < count; k++) t = combine(t, contributions[k][i]);
            return Math.fround(combine(t, v) / divisor);
          });
          const got = own.slice();
          expect(foldContributions(got, wires, op, divisor)).toBe(true);
          expect(bits(got), `count ${count} n=${n} ${op}/${divisor}`).toEqual(bits(want));
          for (const w of wires) pool.release(w);
        }
      }
    }
    const mixed = [pool.acquire(16), other.acquire(16)];
    const untouched = Float32Array.from([1, 2, 3, 4]);
    expect(foldContributions(untouched, mixed, 'sum', 1)).toBe(false);
    expect(Array.from(untouched)).toEqual([1, 2, 3, 4]);
  });

  it('lossy codecs do round, fp32 does not', () => {
    const xs = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 100);
    for (const name of ['fp32', 'bf16', 'fp16'] as Codec[]) {
      const c = getCodec(name);
      const wire = pool.acquire(64 * c.bytesPerElement);
      const kept = xs.slice();
      c.encode(kept, wire, true);
      expect(kept.some((v, i) => v !== xs[i])).toBe(name !== 'fp32');
      pool.release(wire);
    }
  });

  it('refuses a wire buffer outside the kernel arenas', () => {
    expect(() => getCodec('bf16').reduceIntoWire(new Float32Array(4), new Uint8Array(8), 'sum')).toThrow(/kernel arena/);
  });

  it('refuses an unknown codec with a coded error', () => {
    expect(() => getCodec('int8')).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
  });
});
