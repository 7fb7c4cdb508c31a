/**
 * Deterministic random numbers built only from IEEE-754 +, -, *, / and sqrt (correctly rounded
 * everywhere), Math.floor of exact values, and 32-bit integer ops (Math.imul, >>>, ^). So the same
 * seed gives the same bytes on every backend, process, machine and JS engine (Math.log/Math.cos are
 * not specified to be correctly rounded, so they are not used; detLog stands in for log).
 *
 * Two generators:
 *   Rng          sequential xoshiro128** (seeded through splitmix32), for token sampling and tests.
 *   normalAt     counter-based (Philox4x32-10): element i of a stream is a pure function of
 *                (seed, stream, i), so any slice of a parameter tensor is computed without the
 *                elements before it. Parameter init uses it.
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';

/** Sequential xoshiro128** seeded through splitmix32, with a uniform and a polar-method normal sampler. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  /** `seed`: any finite number (its integer part is used); `stream`: an independent sub-sequence id. */
  constructor(seed: number, stream = 0) {
    // splitmix32 expands (seed, stream) into four non-zero state words.
    const s = Math.trunc(seed);
    const low = s >>> 0;
    const high = Math.floor(s / 0x100000000) >>> 0;
    let x = (low ^ Math.imul(high, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca77)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Standard normal N(0, 1) by Marsaglia's polar method (needs only log and sqrt). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s >= 1 || s === 0) continue;
      const f = Math.sqrt((-2 * detLog(s)) / s);
      this.spare = v * f;
      return u * f;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE ? 1 : 0;
const LN2 = 0.6931471805599453;

/**
 * Natural log of a positive normal double with basic arithmetic only (|error| < 1e-15):
 * x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...)
 * with z = (m - 1) / (m + 1), |z| < 0.172, so 14 terms are below double rounding.
 */
export function detLog(x: number): number {
  f64[0] = x;
  let e = ((u32[HI] >>> 20) & 0x7ff) - 1023;
  u32[HI] = (u32[HI] & 0x800fffff) | 0x3ff00000; // m in [1, 2)
  let m = f64[0];
  if (m > Math.SQRT2) {
    m /= 2;
    e += 1;
  }
  const z = (m - 1) / (m + 1);
  const z2 = z * z;
  let sum = 0;
  for (let k = 27; k >= 1; k -= 2) sum = sum * z2 + 1 / k;
  return e * LN2 + 2 * z * sum;
}

const f64Pair = new Float64Array(2);
const u32Pair = new Uint32Array(f64Pair.buffer);

/**
 * out = [detLog(x), detLog(y)], bit for bit: the same operations as detLog in two interleaved
 * lanes, so the CPU overlaps the two 14-step dependency chains (2.3x faster than two calls).
 * Keep it operation-for-operation identical to detLog (prng.test.ts checks).
 */
export function detLogPair(x: number, y: number, out: Float64Array): void {
  f64Pair[0] = x;
  f64Pair[1] = y;
  const hx = HI; // high word of x
  const hy = 2 + HI; // high word of y
  let ex = ((u32Pair[hx] >>> 20) & 0x7ff) - 1023;
  let ey = ((u32Pair[hy] >>> 20) & 0x7ff) - 1023;
  u32Pair[hx] = (u32Pair[hx] & 0x800fffff) | 0x3ff00000;
  u32Pair[hy] = (u32Pair[hy] & 0x800fffff) | 0x3ff00000;
  let mx = f64Pair[0];
  let my = f64Pair[1];
  if (mx > Math.SQRT2) {
    mx /= 2;
    ex += 1;
  }
  if (my > Math.SQRT2) {
    my /= 2;
    ey += 1;
  }
  const zx = (mx - 1) / (mx + 1);
  const zy = (my - 1) / (my + 1);
  const zx2 = zx * zx;
  const zy2 = zy * zy;
  let sx = 0;
  let sy = 0;
  for (let k = 27; k >= 1; k -= 2) {
    const r = 1 / k;
    sx = sx * zx2 + r;
    sy = sy * zy2 + r;
  }
  out[0] = ex * LN2 + 2 * zx * sx;
  out[1] = ey * LN2 + 2 * zy * sy;
}

/** A 32-bit FNV-1a hash of a string, to derive independent streams (e.g. one per parameter name). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Counter-based normals: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel Random Numbers: As
// Easy as 1, 2, 3", SC'11; the generator of Random123, PyTorch's CUDA RNG and JAX), feeding
// Marsaglia's polar method.

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const M0_HI = PHILOX_M0 >>> 16;
const M0_LO = PHILOX_M0 & 0xffff;
const M1_HI = PHILOX_M1 >>> 16;
const M1_LO = PHILOX_M1 & 0xffff;
const TWO_32 = 4294967296;

/**
 * High 32 bits of the 64-bit product (mHi 2^16 + mLo) * c, from four 16x16 -> 32 products
 * (int32 arithmetic only, which JS engines keep in registers; doubles were 1.6x slower).
 */
function mulHi(mHi: number, mLo: number, c: number): number {
  const cHi = c >>> 16;
  const cLo = c & 0xffff;
  const ll = Math.imul(mLo, cLo);
  const lh = Math.imul(mLo, cHi);
  const hl = Math.imul(mHi, cLo);
  const hh = Math.imul(mHi, cHi);
  const middle = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff); // < 3 * 2^16: carries into the high word
  return (hh + (lh >>> 16) + (hl >>> 16) + (middle >>> 16)) | 0;
}

/**
 * Philox4x32-10: a keyed bijection of the 128-bit counter (c0..c3) under the 64-bit key (k0, k1),
 * written to out[0..3]; words are 32-bit (signed or unsigned inputs alike). Matches Random123's
 * known-answer vectors. Each round: (hi, lo) = M0 c0 and M1 c2 as 64-bit products, then
 * c = (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)), and the key steps by (W0, W1).
 */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  c0 |= 0;
  c1 |= 0;
  c2 |= 0;
  c3 |= 0;
  k0 |= 0;
  k1 |= 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0_HI, M0_LO, c0);
    const lo0 = Math.imul(PHILOX_M0, c0);
    const hi1 = mulHi(M1_HI, M1_LO, c2);
    const lo1 = Math.imul(PHILOX_M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 = (k0 + PHILOX_W0) | 0;
    k1 = (k1 + PHILOX_W1) | 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

const block = new Uint32Array(4);
const points = new Float64Array(6); // two polar points (u, v, s)
const logs = new Float64Array(2);

/**
 * The accepted polar point of pair j of a stream: out[at..at+2] = (u, v, s = u^2 + v^2), with
 * u, v uniform in (-1, 1) and 0 < s < 1. Block b = 0, 1, ... of counter (j low, j high, stream, b)
 * gives two tries, (word 0, word 1) then (word 2, word 3), each word as a signed 32-bit grid
 * point (w + 1/2) / 2^31, which is never 0, so s > 0. Only pair j's own counters are read, so
 * the draws never depend on neighbouring elements. A try is accepted with probability pi/4, so
 * 95% of pairs need one block.
 */
function polarPoint(k0: number, k1: number, stream: number, j: number, out: Float64Array, at: number): void {
  const jLo = j >>> 0;
  const jHi = Math.floor(j / TWO_32) >>> 0;
  for (let b = 0; ; b++) {
    philox4x32(jLo, jHi, stream, b, k0, k1, block);
    for (let w = 0; w < 4; w += 2) {
      const u = ((block[w] | 0) + 0.5) / 2147483648;
      const v = ((block[w + 1] | 0) + 0.5) / 2147483648;
      const s = u * u + v * v;
      if (s < 1) {
        out[at] = u;
        out[at + 1] = v;
        out[at + 2] = s;
        return;
      }
    }
  }
}

/** The seed's integer part as the 64-bit Philox key (two's complement words). */
function seedKey(seed: number): [number, number] {
  const s = Math.trunc(seed);
  return [s >>> 0, Math.floor(s / TWO_32) >>> 0];
}

function checkIndexRange(start: number, count: number): void {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(start + count)) {
    throw new TrainerError(ModelErrorCode.MODEL_INPUT, `normal stream elements [${start}, ${start + count}) are not integers in [0, 2^53)`, {
      hint: 'index a counter-based stream with non-negative safe integers',
      details: { start, count },
    });
  }
}

/**
 * Element `index` of the counter-based normal stream (seed, stream): N(0, 1) by Marsaglia's polar
 * method, a pure function of the three computed in O(1); elements 2j and 2j+1 are u f and v f for
 * pair j's polar point, f = sqrt(-2 ln s / s). `seed`: any finite number (its integer part is the
 * 64-bit key); `stream`: a 32-bit stream id (e.g. hashString of a parameter name); `index`: an
 * integer in [0, 2^53).
 */
export function normalAt(seed: number, stream: number, index: number): number {
  checkIndexRange(index, 1);
  const [k0, k1] = seedKey(seed);
  polarPoint(k0, k1, stream >>> 0, Math.floor(index / 2), points, 0);
  const f = Math.sqrt((-2 * detLog(points[2])) / points[2]);
  return index % 2 === 0 ? points[0] * f : points[1] * f;
}

/**
 * out[k] = fround(scale * normalAt(seed, stream, start + k)) for every k, the fast way: two pairs
 * at a time, their logs taken together (detLogPair) so the CPU overlaps the two dependency chains.
 */
export function fillNormals(out: Float32Array, seed: number, stream: number, start: number, scale = 1): void {
  checkIndexRange(start, out.length);
  if (out.length === 0) return;
  const [k0, k1] = seedKey(seed);
  const id = stream >>> 0;
  const lastPair = Math.floor((start + out.length - 1) / 2);
  for (let j = Math.floor(start / 2); j <= lastPair; j += 2) {
    polarPoint(k0, k1, id, j, points, 0);
    if (j + 1 <= lastPair) polarPoint(k0, k1, id, j + 1, points, 3);
    else points[5] = points[2]; // no second pair: its lane is computed and dropped
    detLogPair(points[2], points[5], logs);
    for (let lane = 0; lane < 2; lane++) {
      const s = points[3 * lane + 2];
      const f = Math.sqrt((-2 * logs[lane]) / s);
      const k = 2 * (j + lane) - start; // out index of the pair's first element
      if (k >= 0 && k < out.length) out[k] = scale * (points[3 * lane] * f);
      if (k + 1 >= 0 && k + 1 < out.length) out[k + 1] = scale * (points[3 * lane + 1] * f);
    }
  }
}

/**
 * out[k] = fround(bound * (2 u - 1)), u = element start + k of the counter-based uniform stream
 * (seed, stream) in (0, 1): one Philox4x32-10 block per element (counter = (index low, index
 * high, stream, 'LoRA')), so any range of a tensor is computed on its own, as fillNormals.
 */
export function fillUniforms(out: Float32Array, seed: number, stream: number, start: number, bound: number): void {
  checkIndexRange(start, out.length);
  const [k0, k1] = seedKey(seed);
  const id = stream >>> 0;
  const block = new Uint32Array(4);
  for (let k = 0; k < out.length; k++) {
    const i = start + k;
    philox4x32(i >>> 0, Math.floor(i / TWO_32) >>> 0, id, 0x4c6f5241, k0, k1, block);
    const u = (block[0] + 0.5) / TWO_32;
    out[k] = bound * (2 * u - 1);
  }
}
