import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { widenHalf } from './half-float.js';
import { HfModelFolder, HF_INDEX_FILE } from './hf-folder.js';
import { planRegionRead, transposeMatrix } from './hf-region.js';
import { hfShardFileName, planHfShards, writeHfWeights, type HfWeightSpec } from './hf-writer.js';
import { regionSize, type Region } from './region.js';

/** A safetensors file built by hand (any dtype, as another tool would write it). */
function writeRaw(path: string, tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([prefix, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.bytes))]));
}

/** Deterministic 16-bit codes of finite values (no exponent of all ones). */
function halfCodes(n: number, seed: number, dtype: 'BF16' | 'F16'): Uint16Array {
  const codes = new Uint16Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const c = s >>> 16;
    codes[i] = dtype === 'BF16' ? (c & 0x807f) | (((c >>> 7) % 200 + 20) << 7) : (c & 0x83ff) | (((c >>> 10) % 30) << 10);
  }
  return codes;
}

const bytes = (v: Float32Array | Uint16Array | Int32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** The straightforward read: the whole stored tensor, transposed to ours, the region sliced out. */
function naiveRegion(stored: Float32Array, ours: [number, number], region: Region | undefined, transposed: boolean, start: number, end: number): Float32Array {
  const full = transposed ? transposeMatrix(stored, ours[1], ours[0]) : stored;
  const [r0, r1] = region?.rows ?? [0, ours[0]];
  const cols = region?.cols ?? [[0, ours[1]]];
  const out: number[] = [];
  for (let r = r0; r < r1; r++) for (const [a, b] of cols) for (let c = a; c < b; c++) out.push(full[r * ours[1] + c]);
  return new Float32Array(out.slice(start, end));
}

describe('Hugging Face model folders', () => {
  // q [12, 10] stored [10, 12] (transposed, F32), k [12, 6] stored [6, 12] BF16 in another shard,
  // o [10, 12] stored [12, 10] F16, norm [12] F32 (not transposed).
  const q = Float32Array.from({ length: 120 }, (_, i) => i * 0.25 - 7);
  const k16 = halfCodes(72, 3, 'BF16');
  const o16 = halfCodes(120, 5, 'F16');
  const norm = Float32Array.from({ length: 12 }, (_, i) => 1 + i / 8);
  const k = widenHalf('BF16', k16);
  const o = widenHalf('F16', o16);

  function shardedFolder(): string {
    const dir = mkdtempSync(join(tmpdir(), 'hf-folder-'));
    writeRaw(join(dir, 'model-00001-of-00002.safetensors'), [
      { name: 'q', dtype: 'F32', shape: [10, 12], bytes: bytes(q) },
      { name: 'norm', dtype: 'F32', shape: [12], bytes: bytes(norm) },
      { name: 'rotary.inv_freq', dtype: 'F64', shape: [2], bytes: new Uint8Array(16) }, // a buffer the model never reads
    ]);
    writeRaw(join(dir, 'model-00002-of-00002.safetensors'), [
      { name: 'k', dtype: 'BF16', shape: [6, 12], bytes: bytes(k16) },
      { name: 'o', dtype: 'F16', shape: [12, 10], bytes: bytes(o16) },
      { name: 'ids', dtype: 'I32', shape: [3], bytes: bytes(new Int32Array([1, 2, 3])) },
    ]);
    const weightMap = { q: 'model-00001-of-00002.safetensors', norm: 'model-00001-of-00002.safetensors', k: 'model-00002-of-00002.safetensors', o: 'model-00002-of-00002.safetensors', ids: 'model-00002-of-00002.safetensors', 'rotary.inv_freq': 'model-00001-of-00002.safetensors', ghost: 'model-00001-of-00002.safetensors' };
    writeFileSync(join(dir, HF_INDEX_FILE), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    return dir;
  }

  it('reads regions of transposed BF16, F16 and F32 tensors of a sharded folder as a full read, transpose and slice would', async () => {
    const folder = await HfModelFolder.open(shardedFolder());
    try {
      const cases: [string, Float32Array, [number, number], Region | undefined][] = [
        ['q', q, [12, 10], undefined],
        ['q', q, [12, 10], { cols: [[2, 5]] }], // column parallel: one contiguous read
        ['q', q, [12, 10], { cols: [[0, 2], [6, 9]] }], // q-like split into two ranges
        ['k', k, [12, 6], { rows: [4, 8] }], // row parallel
        ['k', k, [12, 6], { rows: [3, 12], cols: [[1, 4]] }],
        ['o', o, [10, 12], { rows: [5, 10], cols: [[0, 3], [7, 12]] }],
      ];
      for (const [name, stored, ours, region] of cases) {
        const size = regionSize(ours, region);
        for (const [start, end] of [[0, size], [1, size - 1], [3, 4], [size - 7, size], [0, 0]] as [number, number][]) {
          const got = await folder.readRegion(name, ours, region, start, end, true);
          expect(Array.from(got), `${name} ${JSON.stringify(region)} [${start}, ${end})`).toEqual(Array.from(naiveRegion(stored, ours, region, true, start, end)));
        }
      }
      // Not transposed: the region's own runs.
      expect(Array.from(await folder.readRegion('norm', [12], { rows: [4, 9] }, 1, 5, false))).toEqual(Array.from(norm.subarray(5, 9)));
      expect(Array.from(await folder.readRegion('q', [10, 12], { cols: [[3, 6]] }, 2, 11, false))).toEqual(Array.from(naiveRegion(q, [10, 12], { cols: [[3, 6]] }, false, 2, 11)));
      expect(Array.from(await folder.readTensor('k'))).toEqual(Array.from(k));
    } finally {
      await folder.close();
    }
  });

  it('reads a transposed column-parallel shard in one run and a row-parallel one in a run per stored row', () => {
    // ours [8, 6] stored [6, 8]: columns 2..4 of ours are stored rows 2..4, whole.
    expect(planRegionRead([8, 6], { cols: [[2, 5]] }, 0, 24, true).runs).toEqual([[16, 24]]);
    // rows 2..5 of ours: stored columns 2..5 of each of the 6 stored rows.
    expect(planRegionRead([8, 6], { rows: [2, 6] }, 0, 24, true).runs).toEqual([[2, 4], [10, 4], [18, 4], [26, 4], [34, 4], [42, 4]]);
    // a piece [7, 13) of that region touches rows 1..2 of it (ours 3..4): 2 elements per stored row.
    expect(planRegionRead([8, 6], { rows: [2, 6] }, 7, 13, true).runs).toEqual([[3, 2], [11, 2], [19, 2], [27, 2], [35, 2], [43, 2]]);
    // same orientation: per-row runs of a column region merge when adjacent
    expect(planRegionRead([4, 6], { cols: [[0, 6]] }, 0, 24, false).runs).toEqual([[0, 24]]);
  });

  it('opens only the shards it reads; names the tensor and file of every failure', async () => {
    const dir = shardedFolder();
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    const folder = await HfModelFolder.open(dir);
    try {
      expect(Array.from(await folder.readRegion('q', [12, 10], undefined, 0, 120, true))).toEqual(Array.from(transposeMatrix(q, 10, 12)));
      await expect(folder.check('k', [6, 12])).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_SHARD_MISSING', message: expect.stringContaining('places k in model-00002-of-00002.safetensors') });
      await expect(folder.check('v', [6, 12])).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_TENSOR_MISSING', message: `${join(dir, HF_INDEX_FILE)} has no tensor v` });
      await expect(folder.check('ghost', [1])).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_TENSOR_MISSING', message: expect.stringMatching(/model-00001-of-00002\.safetensors has no tensor ghost/) });
      await expect(folder.check('q', [12, 10])).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_TENSOR_SHAPE', message: expect.stringContaining('q has shape [10,12], the model\'s config needs [12,10]') });
      await expect(folder.check('rotary.inv_freq', [2])).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_DTYPE', message: expect.stringContaining('rotary.inv_freq is F64') });
      await folder.check('q', [10, 12]);
    } finally {
      await folder.close();
    }
    const bad = mkdtempSync(join(tmpdir(), 'hf-folder-'));
    await expect(HfModelFolder.open(bad)).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_WEIGHTS_MISSING' });
    writeFileSync(join(bad, 'pytorch_model.bin'), '');
    await expect(HfModelFolder.open(bad)).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_WEIGHTS_MISSING', message: expect.stringContaining('(it has pytorch_model.bin)') });
    writeFileSync(join(bad, HF_INDEX_FILE), JSON.stringify({ weight_map: { q: '../elsewhere.safetensors' } }));
    await expect(HfModelFolder.open(bad)).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_INDEX' });
    writeFileSync(join(bad, HF_INDEX_FILE), '{"metadata": {}');
    await expect(HfModelFolder.open(bad)).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_INDEX' });
  });

  it('writes shards and an index as save_pretrained does, and reads them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hf-write-'));
    const specs: HfWeightSpec[] = [
      { name: 'b.weight', dtype: 'F32', shape: [4, 4] }, // 64 bytes
      { name: 'a.weight', dtype: 'BF16', shape: [16] }, // 32
      { name: 'big', dtype: 'F32', shape: [40] }, // 160: over the limit, a shard of its own
      { name: 'c', dtype: 'F16', shape: [8] }, // 16
    ];
    expect(planHfShards(specs, 100)).toEqual([[2], [0, 1], [3]]);
    expect(planHfShards(specs, 1e9)).toEqual([[0, 1, 2, 3]]);
    expect(hfShardFileName(1, 3)).toBe('model-00002-of-00003.safetensors');
    writeFileSync(join(dir, 'model.safetensors'), 'an earlier single-file save');
    const values = specs.map((s, i) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      return s.dtype === 'F32' ? bytes(Float32Array.from({ length: n }, (_, j) => i * 100 + j)) : bytes(halfCodes(n, i, s.dtype as 'BF16'));
    });
    const asked: number[] = [];
    const written = await writeHfWeights(dir, specs, (i) => (asked.push(i), values[i]), { maxShardBytes: 100 });
    expect(asked).toEqual([2, 0, 1, 3]);
    expect(written).toEqual({ files: ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'], totalSize: 272 });
    expect(readdirSync(dir).sort()).toEqual([...written.files, HF_INDEX_FILE].sort()); // the stale model.safetensors is gone
    expect(readFileSync(join(dir, HF_INDEX_FILE), 'utf8')).toBe(
      '{\n  "metadata": {\n    "total_size": 272\n  },\n  "weight_map": {\n    "a.weight": "model-00002-of-00003.safetensors",\n' +
      '    "b.weight": "model-00002-of-00003.safetensors",\n    "big": "model-00001-of-00003.safetensors",\n    "c": "model-00003-of-00003.safetensors"\n  }\n}\n',
    );
    const folder = await HfModelFolder.open(dir);
    try {
      expect(Array.from(await folder.readTensor('big'))).toEqual(Array.from(new Float32Array(values[2].buffer)));
      expect(Array.from(await folder.readTensor('c'))).toEqual(Array.from(widenHalf('F16', new Uint16Array(values[3].buffer))));
    } finally {
      await folder.close();
    }
    // Saved again under the limit: one model.safetensors, the shards and the index removed.
    await writeHfWeights(dir, specs, (i) => values[i]);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });
});
