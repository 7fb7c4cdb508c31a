/**
 * Counter-based randomness for data sampling: every value is a pure function of its coordinates
 * (seed, step, index), so any worker can compute any sample without shared state or replay, and
 * a resumed run draws exactly what an uninterrupted one would have.
 *
 * The mixer is splitmix64 (Steele, Lea, Flood 2014; the seeding function of xoshiro), computed
 * with BigInt for exact 64-bit arithmetic. It is not cryptographic; it passes BigCrush as a
 * counter-mode generator, which is plenty for choosing training windows.
 */
const MASK64 = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

/** One splitmix64 step: a bijective mix of a 64-bit value. */
export function splitmix64(x: bigint): bigint {
  let z = (x + GOLDEN_GAMMA) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** The 64-bit key of a (seed, step) stream; seed may be any safe integer (negatives wrap). */
export function streamKey(seed: number, step: number): bigint {
  const seedKey = splitmix64(BigInt.asUintN(64, BigInt(seed)));
  return splitmix64(seedKey ^ BigInt(step));
}

/**
 * Uniform integer in [0, n) for draw `index` of a stream. Uses 64 random bits modulo n: the bias
 * is below n / 2^64 (under 1e-10 for any corpus that fits in memory).
 */
export function uniformIndex(key: bigint, index: number, n: number): number {
  return Number(splitmix64((key + BigInt(index)) & MASK64) % BigInt(n));
}
