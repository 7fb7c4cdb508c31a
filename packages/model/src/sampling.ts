/**
 * Picks the next token from one row of logits:
 *  - temperature 0: greedy (argmax; the lowest id wins a tie);
 *  - otherwise softmax(logits / temperature) restricted to the topK largest logits (ties at the
 *    k-th value are all kept; topK 0 or undefined: no restriction), sampled with the caller's
 *    deterministic Rng.
 */
import type { Rng } from './prng.js';

export function sampleToken(logits: Float32Array, temperature: number, topK: number | undefined, rng: Rng): number {
  const V = logits.length;
  if (temperature === 0) {
    let best = 0;
    for (let j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
    return best;
  }
  let threshold = -Infinity;
  if (topK !== undefined && topK > 0 && topK < V) {
    const sorted = Float32Array.from(logits).sort(); // ascending
    threshold = sorted[V - topK];
  }
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[j] >= threshold && logits[j] > max) max = logits[j];
  const weights = new Float64Array(V);
  let sum = 0;
  for (let j = 0; j < V; j++) {
    if (logits[j] < threshold) continue;
    const w = Math.exp((logits[j] - max) / temperature);
    weights[j] = w;
    sum += w;
  }
  let u = rng.uniform() * sum;
  let last = 0;
  for (let j = 0; j < V; j++) {
    if (weights[j] === 0) continue;
    last = j;
    u -= weights[j];
    if (u < 0) return j;
  }
  return last; // rounding left u >= 0 after the last candidate
}
