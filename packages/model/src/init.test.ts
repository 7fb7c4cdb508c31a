import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { GPTConfig } from './config.js';
import { MODEL_CONFIGS } from './config.js';
import type { LocalParamEntry } from './init.js';
import { initLocalRange, initParams, initParamsRange } from './init.js';
import { paramLayout } from './layout.js';
import { Rng, hashString } from './prng.js';
import { localFromGlobal, tensorParallelLayout } from './tensor-parallel/tp-layout.js';

const nano = MODEL_CONFIGS['gpt-nano'];
const micro = MODEL_CONFIGS['gpt-micro'];
/** Two blocks, a vocabulary that 2 and 4 ranks split unevenly, 4 heads so T = 4 works. */
const ODD: GPTConfig = { vocabSize: 67, contextLength: 8, layers: 2, heads: 4, dModel: 16, layerNormEps: 1e-5 };

function stats(v: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const x of v) s += x;
  const mean = s / v.length;
  let q = 0;
  for (const x of v) q += (x - mean) ** 2;
  return { mean, std: Math.sqrt(q / v.length) };
}

/** Random [start, end) ranges of [0, size): single elements, tensor-crossing spans, empty and whole. */
function randomRanges(size: number, count: number, seed: number): [number, number][] {
  const rng = new Rng(seed);
  const ranges: [number, number][] = [[0, size], [0, 0], [size, size], [0, 1], [size - 1, size]];
  for (let k = 0; k < count; k++) {
    const start = Math.floor(rng.uniform() * size);
    const length = k % 3 === 0 ? 1 : Math.floor(rng.uniform() * rng.uniform() * (size - start + 1));
    ranges.push([start, Math.min(size, start + length)]);
  }
  return ranges;
}

const inputError = expect.objectContaining({ code: 'TRAINER_ERR_MODEL_INPUT' });

describe('initParams', () => {
  it('follows GPT-2 init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0, LayerNorm 1/0', () => {
    const flat = initParams(nano, 7);
    for (const e of paramLayout(nano).entries) {
      const v = flat.subarray(e.offset, e.offset + e.size);
      if (e.name.endsWith('.bias')) expect(v.every((x) => x === 0), e.name).toBe(true);
      else if (/ln_[12f]\.weight$/.test(e.name)) expect(v.every((x) => x === 1), e.name).toBe(true);
      else {
        const want = e.name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * nano.layers) : 0.02;
        const { mean, std } = stats(v);
        expect(Math.abs(std - want) / want, e.name).toBeLessThan(0.05);
        expect(Math.abs(mean), e.name).toBeLessThan(5 * (want / Math.sqrt(v.length)));
      }
    }
  });

  it('is deterministic: same seed same bytes, another seed other bytes', () => {
    const digest = (seed: number): string => createHash('sha256').update(initParams(nano, seed)).digest('hex');
    expect(digest(1)).toBe(digest(1));
    expect(digest(1)).not.toBe(digest(2));
    // Pinned bytes: the same on every machine and backend; a change here changes every run's
    // initial weights and must be deliberate.
    const bytes = initParams(micro, 0);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe('3c7f2c4bc95ef395f838fbd559488dcb292fc991517dcf498b9a9475df849715');
  });

  it('gives every parameter name its own stream (no 32-bit name-hash collisions up to 256 blocks)', () => {
    const names = paramLayout({ ...micro, layers: 256 }).entries.map((e) => e.name);
    expect(new Set(names.map(hashString)).size).toBe(names.length);
  });
});

describe('initParamsRange', () => {
  it('equals the full vector\'s subarray for any range, computed on its own', () => {
    for (const config of [micro, ODD]) {
      const full = initParams(config, 3);
      for (const [start, end] of randomRanges(full.length, 300, 1)) {
        expect(initParamsRange(config, 3, start, end), `[${start}, ${end})`).toEqual(full.subarray(start, end));
      }
      // Every tensor boundary, crossed by a few elements either side.
      for (const e of paramLayout(config).entries) {
        const [start, end] = [Math.max(0, e.offset - 3), Math.min(full.length, e.offset + 3)];
        expect(initParamsRange(config, 3, start, end), e.name).toEqual(full.subarray(start, end));
      }
    }
  });

  it('writes into a given buffer (a view of a rank\'s own storage), overwriting what was there', () => {
    const full = initParams(micro, 3);
    const storage = new Float32Array(1000).fill(Number.NaN);
    const view = storage.subarray(100, 900);
    expect(initParamsRange(micro, 3, 4000, 4800, view)).toBe(view);
    expect(view).toEqual(full.subarray(4000, 4800));
    expect(storage[99]).toBeNaN();
    expect(storage[900]).toBeNaN();
    expect(() => initParamsRange(micro, 3, 0, 10, new Float32Array(9))).toThrow(inputError);
  });

  it('refuses ranges outside the layout', () => {
    const size = paramLayout(micro).totalSize;
    for (const [start, end] of [[-1, 2], [3, 2], [0, size + 1], [0.5, 2]]) {
      expect(() => initParamsRange(micro, 0, start, end), `[${start}, ${end})`).toThrow(inputError);
    }
  });
});

describe('initLocalRange', () => {
  it("gives a tensor-parallel rank's values of its shard (T = 2, 4), for any range", () => {
    const fullLayout = paramLayout(ODD);
    const global = initParams(ODD, 5);
    for (const T of [2, 4]) {
      for (let t = 0; t < T; t++) {
        const tp = tensorParallelLayout(ODD, T, t);
        const want = localFromGlobal(tp, fullLayout, global);
        expect(initLocalRange(ODD, 5, tp.entries, 0, tp.totalSize), `T=${T} t=${t}`).toEqual(want);
        for (const [start, end] of randomRanges(tp.totalSize, 100, 10 * T + t)) {
          expect(initLocalRange(ODD, 5, tp.entries, start, end), `T=${T} t=${t} [${start}, ${end})`).toEqual(want.subarray(start, end));
        }
      }
    }
  });

  it("gives a pipeline stage's renumbered entries the same values per name, sharded or not", () => {
    const global = initParams(ODD, 5);
    const layouts: { entries: LocalParamEntry[]; values: (name: string) => Float32Array }[] = [];
    const fullLayout = paramLayout(ODD);
    layouts.push({ entries: fullLayout.entries, values: (name) => slice(fullLayout.entries, global, name) });
    const tp = tensorParallelLayout(ODD, 2, 1);
    const tpValues = localFromGlobal(tp, fullLayout, global);
    layouts.push({ entries: tp.entries, values: (name) => slice(tp.entries, tpValues, name) });
    for (const { entries, values } of layouts) {
      // Stage: block 1 and ln_f, renumbered from 0.
      const kept = entries.filter((e) => e.block >= 1);
      let offset = 0;
      const stage = kept.map((e) => {
        const moved = { ...e, offset };
        offset += e.size;
        return moved;
      });
      const local = initLocalRange(ODD, 5, stage, 0, offset);
      for (const e of stage) expect(local.subarray(e.offset, e.offset + e.size), e.name).toEqual(values(e.name));
      for (const [start, end] of randomRanges(offset, 50, 7)) {
        expect(initLocalRange(ODD, 5, stage, start, end)).toEqual(local.subarray(start, end));
      }
    }
  });

  it('refuses entries that are not of this model or leave gaps', () => {
    const entries = paramLayout(micro).entries;
    expect(() => initLocalRange(micro, 0, [{ ...entries[0], name: 'lm_head.weight' }], 0, 4)).toThrow(inputError);
    expect(() => initLocalRange(micro, 0, [{ ...entries[0], size: 5 }], 0, 4)).toThrow(inputError);
    expect(() => initLocalRange(micro, 0, [entries[0]], 0, entries[0].size + 1)).toThrow(inputError);
    expect(() => initLocalRange(micro, Number.NaN, entries, 0, 4)).toThrow(inputError);
  });
});

function slice(entries: readonly LocalParamEntry[], flat: Float32Array, name: string): Float32Array {
  const e = entries.find((x) => x.name === name);
  if (!e) throw new Error(`no ${name}`);
  return flat.subarray(e.offset, e.offset + e.size);
}
