/**
 * Token-id pairs packed into one number, for Map keys: key = left * PAIR_BASE + right.
 * Exact in a double as long as ids stay below PAIR_BASE (2^21 * 2^21 = 2^42 < 2^53).
 */
export const PAIR_BASE = 2 ** 21;

export function pairKey(left: number, right: number): number {
  return left * PAIR_BASE + right;
}

export function pairLeft(key: number): number {
  return Math.floor(key / PAIR_BASE);
}

export function pairRight(key: number): number {
  return key % PAIR_BASE;
}
