import { describe, expect, it } from 'vitest';
import { BatchSampler, validationBatches } from './batch-sampler.js';
import { DataErrorCode } from './codes.js';
import { expectTrainerError } from './internal/expect-error.js';

const tokens = Uint16Array.from({ length: 5000 }, (_, i) => (i * 7919) % 2048);
const T = 16;

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

describe('BatchSampler', () => {
  it('is a function of (seed, step) alone', () => {
    const a = new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 42 });
    const b = new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 42 });
    expect(b.starts(3)).toEqual(a.starts(3));
    expect(a.starts(3)).toEqual(a.starts(3));
    expect(a.starts(4)).not.toEqual(a.starts(3));
    expect(new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 43 }).starts(3)).not.toEqual(a.starts(3));
    // Order of calls does not matter (no hidden state): step 1000 first, then step 0.
    const c = new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 42 });
    const late = c.starts(1000);
    expect(c.starts(0)).toEqual(a.starts(0));
    expect(late).toEqual(a.starts(1000));
    // A bigger global batch extends the smaller one: sample i does not depend on the batch size.
    expect(new BatchSampler({ tokens, contextLength: T, globalBatch: 16, seed: 42 }).starts(3).subarray(0, 8)).toEqual(a.starts(3));
  });

  it('draws starts over the whole valid range, roughly uniformly', () => {
    const sampler = new BatchSampler({ tokens, contextLength: T, globalBatch: 64, seed: 1 });
    const n = tokens.length - T;
    const buckets = new Array<number>(10).fill(0);
    let min = Infinity;
    let max = -Infinity;
    for (let step = 0; step < 200; step++) {
      for (const s of sampler.starts(step)) {
        expect(s >= 0 && s < n).toBe(true);
        buckets[Math.floor((s / n) * 10)]++;
        min = Math.min(min, s);
        max = Math.max(max, s);
      }
    }
    // 12800 draws, 1280 expected per bucket; binomial sd ~34, so +-200 is a loose bound.
    for (const count of buckets) expect(Math.abs(count - 1280)).toBeLessThan(200);
    expect(min).toBeLessThan(20);
    expect(max).toBeGreaterThan(n - 20);
  });

  it('returns windows as inputs and next-token targets', () => {
    const sampler = new BatchSampler({ tokens, contextLength: T, globalBatch: 4, seed: 9 });
    const starts = sampler.starts(5);
    const { tokens: x, targets: y, batch } = sampler.batch(5, { rank: 0, dpSize: 1, microBatch: 4, micro: 0 });
    expect(batch).toBe(4);
    expect(x).toHaveLength(4 * T);
    for (let b = 0; b < 4; b++) {
      for (let t = 0; t < T; t++) {
        expect(x[b * T + t]).toBe(tokens[starts[b] + t]);
        expect(y[b * T + t]).toBe(tokens[starts[b] + t + 1]);
      }
    }
  });

  it('rank slices concatenate to the global batch for dpSize 1..4 and any micro-batch size', () => {
    const globalBatch = 24;
    const sampler = new BatchSampler({ tokens, contextLength: T, globalBatch, seed: 7 });
    for (const step of [0, 1, 17]) {
      const whole = sampler.batch(step, { rank: 0, dpSize: 1, microBatch: globalBatch, micro: 0 });
      for (const dpSize of [1, 2, 3, 4]) {
        const perRank = globalBatch / dpSize;
        for (const microBatch of [1, 2, perRank].filter((m) => perRank % m === 0)) {
          const parts: Int32Array[] = [];
          const targetParts: Int32Array[] = [];
          for (let rank = 0; rank < dpSize; rank++) {
            for (let micro = 0; micro < perRank / microBatch; micro++) {
              const b = sampler.batch(step, { rank, dpSize, microBatch, micro });
              expect(b.batch).toBe(microBatch);
              parts.push(b.tokens);
              targetParts.push(b.targets);
            }
          }
          expect(concat(parts)).toEqual(whole.tokens);
          expect(concat(targetParts)).toEqual(whole.targets);
        }
      }
    }
  });

  it('refuses an indivisible global batch, naming the numbers', async () => {
    const sampler = new BatchSampler({ tokens, contextLength: T, globalBatch: 10, seed: 0 });
    const err = await expectTrainerError(() => sampler.batch(0, { rank: 0, dpSize: 4, microBatch: 1, micro: 0 }), DataErrorCode.BATCH_INDIVISIBLE, /global batch 10 is not divisible by dpSize 4 x microBatch 1 = 4/);
    expect(err.details).toEqual({ globalBatch: 10, dpSize: 4, microBatch: 1 });
    await expectTrainerError(() => sampler.batch(0, { rank: 0, dpSize: 1, microBatch: 4, micro: 0 }), DataErrorCode.BATCH_INDIVISIBLE, /10.*4/);
  });

  it('refuses out-of-range ranks, micro-batches, steps and options', async () => {
    const sampler = new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 0 });
    await expectTrainerError(() => sampler.batch(0, { rank: 2, dpSize: 2, microBatch: 2, micro: 0 }), DataErrorCode.DATA_OPTION, /rank 2/);
    await expectTrainerError(() => sampler.batch(0, { rank: 0, dpSize: 2, microBatch: 2, micro: 2 }), DataErrorCode.DATA_OPTION, /micro-batch index 2.*\[0, 2\)/);
    await expectTrainerError(() => sampler.starts(-1), DataErrorCode.DATA_OPTION, /step/);
    await expectTrainerError(() => sampler.starts(1.5), DataErrorCode.DATA_OPTION, /step/);
    await expectTrainerError(() => new BatchSampler({ tokens, contextLength: 0, globalBatch: 8, seed: 0 }), DataErrorCode.DATA_OPTION, /contextLength/);
    await expectTrainerError(() => new BatchSampler({ tokens, contextLength: T, globalBatch: 8, seed: 0.5 }), DataErrorCode.DATA_OPTION, /seed/);
    await expectTrainerError(() => new BatchSampler({ tokens: new Uint16Array(T), contextLength: T, globalBatch: 8, seed: 0 }), DataErrorCode.DATA_TOO_SHORT, /need 17/);
    // Exactly T + 1 tokens: one possible window.
    const tiny = new BatchSampler({ tokens: tokens.subarray(0, T + 1), contextLength: T, globalBatch: 3, seed: -5 });
    expect(Array.from(tiny.starts(0))).toEqual([0, 0, 0]);
  });
});

describe('validationBatches', () => {
  it('yields deterministic, non-overlapping windows covering the split', () => {
    const val = tokens.subarray(0, 10 * T + 5); // 10 full windows
    const batches = [...validationBatches(val, T, 4)];
    expect(batches.map((b) => b.batch)).toEqual([4, 4, 2]);
    let w = 0;
    for (const b of batches) {
      for (let r = 0; r < b.batch; r++, w++) {
        for (let t = 0; t < T; t++) {
          expect(b.tokens[r * T + t]).toBe(val[w * T + t]);
          expect(b.targets[r * T + t]).toBe(val[w * T + t + 1]);
        }
      }
    }
    expect(w).toBe(10);
    expect([...validationBatches(val, T, 4)]).toEqual(batches);
    expect([...validationBatches(val, T, 4, 2)].map((b) => b.batch)).toEqual([4, 4]);
    expect([...validationBatches(tokens.subarray(0, T + 1), T, 4)].map((b) => b.batch)).toEqual([1]);
  });

  it('refuses a split shorter than one window', async () => {
    await expectTrainerError(() => [...validationBatches(tokens.subarray(0, T), T, 4)], DataErrorCode.DATA_TOO_SHORT, /need 17/);
    await expectTrainerError(() => [...validationBatches(tokens, T, 0)], DataErrorCode.DATA_OPTION, /batchSize/);
  });
});
