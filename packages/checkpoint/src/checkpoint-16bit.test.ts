import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readFlatRange, shardTensors, tensorEntriesFromShards, type FlatTensor } from './flat-layout.js';
import { widenHalf } from './half-float.js';
import { MANIFEST_FILE, stateKinds, TRAINING_STATE_KINDS, type Manifest } from './manifest.js';
import { CheckpointReader } from './reader.js';
import { decodeSafetensors, encodeSafetensors, type SafetensorsDtype } from './safetensors.js';
import { packShard, ShardFile } from './shard-file.js';
import { verifyCheckpoint } from './verify.js';
import {
  bitsOf, codeOf, localCodes, localValues, saveFixture, saveLayout, split, TENSORS, toyWriter as writer, tpTensors, type RankLayout,
} from './testing/toy-checkpoint.js';

/**
 * 16-bit working parameters in checkpoints (bf16/fp16 runs): `params16` pieces of dtype BF16 or
 * F16 beside the fp32 params, m and v, read back widened exactly under any layout; version 1
 * checkpoints (fp32 only) still read; any other dtype, or 16-bit state that does not match the
 * manifest, refused with a code.
 */
afterAll(() => writer.close());

/** A version 1 checkpoint of the toy model (2 ranks, step 7, fp32), written by the trainer before version 2. */
const V1_CHECKPOINT = fileURLToPath(new URL('./testdata/v1-fp32-step-000007', import.meta.url));

describe('16-bit parameters in shards and checkpoints', () => {
  it('a shard with BF16 and F16 pieces round-trips exactly: raw codes on disk, fp32 values widened on read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt16-'));
    const codes = Uint16Array.from({ length: 65536 }, (_, i) => (i * 40503) & 0xffff); // every code, shuffled
    const master = Float32Array.from({ length: 5 }, (_, i) => i / 3);
    const path = join(dir, 'rank-0.safetensors');
    const written = await writer.write(path, packShard([
      { name: 'params/x', data: master }, { name: 'params16/x', data: codes, dtype: 'BF16' }, { name: 'params16/y', data: codes, dtype: 'F16' },
    ]));
    expect(written.bytes).toBe((await readFile(path)).length);
    const raw = decodeSafetensors(await readFile(path));
    expect([...raw.tensors.values()].map((t) => [t.name, t.dtype, t.data.byteLength])).toEqual([['params/x', 'F32', 20], ['params16/x', 'BF16', 131072], ['params16/y', 'F16', 131072]]);
    expect(Buffer.from(raw.tensors.get('params16/y')!.data).equals(Buffer.from(codes.buffer))).toBe(true);
    expect(raw.metadata.format_version).toBe('2');

    const f = await ShardFile.open(path, written.bytes);
    const [x, bf, hf] = f.entries.map((e) => f.dataStart + e.begin);
    expect(Array.from(await f.readFloat32(x, 20))).toEqual(Array.from(master));
    expect(bitsOf(await f.readFloat32(bf, 131072))).toEqual(bitsOf(widenHalf('BF16', codes)));
    expect(bitsOf(await f.readFloat32(hf, 131072))).toEqual(bitsOf(widenHalf('F16', codes)));
    expect(bitsOf(await f.readFloat32(hf + 6, 10))).toEqual(bitsOf(widenHalf('F16', codes.subarray(3, 8)))); // a piece inside
    expect(await codeOf(f.readFloat32(hf + 1, 4))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT'); // half an element
    expect(await codeOf(f.readFloat32(bf + 131070, 4))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT'); // across two tensors
    await f.close();
  });

  for (const precision of ['bf16', 'fp16'] as const) {
    it(`${precision}: params16 beside fp32 params, m and v, read back exactly under other layouts, half the bytes of params`, async () => {
      const root = await mkdtemp(join(tmpdir(), 'ckpt16-'));
      const dir = await saveFixture(root, 7, 3, 0, precision);
      const reader = await CheckpointReader.open(dir);
      const m = reader.manifest;
      const half = precision === 'bf16' ? 'BF16' : 'F16';
      expect(m.stateDtypes).toEqual({ params: 'F32', m: 'F32', v: 'F32', params16: half });
      expect(stateKinds(m)).toEqual(['params', 'm', 'v', 'params16']);
      const bytes = (kind: 'params' | 'params16') => m.tensors.reduce((s, t) => s + t.state[kind]!.reduce((a, p) => a + p.length, 0), 0);
      expect(bytes('params')).toBe(11 * 4);
      expect(bytes('params16')).toBe(bytes('params') / 2);
      // Each shard: the fp32 state first (4-byte aligned), params16 last.
      const shard = decodeSafetensors(await readFile(join(dir, 'rank-0.safetensors')));
      expect([...shard.tensors.keys()].map((n) => n.split('/')[0])).toEqual(['params', 'params', 'm', 'm', 'v', 'v', 'params16', 'params16']);

      const codes = localCodes(TENSORS, 7);
      expect(bitsOf(await readFlatRange(reader, TENSORS, 'params16', 0, 11))).toEqual(bitsOf(widenHalf(half, codes)));
      expect(bitsOf(await readFlatRange(reader, TENSORS, 'params16', 4, 9))).toEqual(bitsOf(widenHalf(half, codes.subarray(4, 9)))); // across pieces and tensors
      for (const kind of TRAINING_STATE_KINDS) expect(Array.from(await readFlatRange(reader, TENSORS, kind, 0, 11))).toEqual(Array.from(localValues(TENSORS, kind, 7)));
      await reader.close();
      expect((await verifyCheckpoint(dir)).problems).toEqual([]);
    });
  }

  it('tensor parallel in bf16: params16 regions written once, read back as full tensors', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt16-'));
    const ranks: RankLayout[] = [];
    for (let t = 0; t < 2; t++) {
      const tensors = tpTensors(2, t);
      const units: [number, number][] = [[0, tensors[1].offset], [tensors[1].offset, tensors[2].offset + 6]];
      for (let d = 0; d < 2; d++) ranks.push({ tensors, pieces: units.map(([s, e]) => split(s, e, 2, d)) });
    }
    const reader = await CheckpointReader.open(await saveLayout(root, 5, ranks, 0, 'bf16'));
    const whole: FlatTensor[] = [{ name: 'a', shape: [4, 8], offset: 0 }, { name: 'b', shape: [6], offset: 32 }, { name: 'c', shape: [6, 2], offset: 38 }];
    expect(bitsOf(await readFlatRange(reader, whole, 'params16', 0, 50))).toEqual(bitsOf(widenHalf('BF16', localCodes(whole, 5))));
    await reader.close();
  });

  it('reads a version 1 checkpoint (fp32 params, m and v only), which holds no params16', async () => {
    const reader = await CheckpointReader.open(V1_CHECKPOINT);
    expect(reader.manifest.version).toBe(1);
    expect(reader.manifest.stateDtypes).toBeUndefined();
    expect(stateKinds(reader.manifest)).toEqual(['params', 'm', 'v']);
    for (const kind of TRAINING_STATE_KINDS) expect(Array.from(await readFlatRange(reader, TENSORS, kind, 0, 11)), kind).toEqual(Array.from(localValues(TENSORS, kind, 7)));
    const none = await readFlatRange(reader, TENSORS, 'params16', 0, 11).catch((e) => e);
    expect(none.code).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
    expect(none.message).toMatch(/holds no params16 \(written under fp32: it holds params, m, v\)/);
    await reader.close();
    const report = await verifyCheckpoint(V1_CHECKPOINT);
    expect(report.problems).toEqual([]);
    expect(report.files.map((f) => f.ok)).toEqual([true, true]);
  });

  it('refuses shard dtypes other than F32, BF16 and F16, 16-bit data in a version 1 shard, and kinds in the wrong dtype', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt16-'));
    const size: Partial<Record<SafetensorsDtype, number>> = { F32: 4, I32: 4, BF16: 2, F16: 2, U8: 1 };
    /** A shard of one 4-element tensor. */
    const write = async (name: string, dtype: SafetensorsDtype, version: string, tensor = 'params16/a') => {
      await writeFile(join(dir, name), Buffer.concat(encodeSafetensors([{ name: tensor, dtype, shape: [4], data: new Uint8Array(4 * size[dtype]!) }], {
        format: 'trainer-checkpoint-shard', format_version: version, slices: JSON.stringify({ a: { flat: [0, 4] } }),
      })));
      return join(dir, name);
    };
    for (const [dtype, version] of [['I32', '2'], ['U8', '2'], ['BF16', '1'], ['F16', '1']] as const) {
      const err = await ShardFile.open(await write(`${dtype}-v${version}`, dtype, version)).catch((e) => e);
      expect(err.code, `${dtype} in version ${version}`).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
      expect(err.message).toContain(`tensor params16/a has dtype ${dtype}; a version ${version} checkpoint shard holds ${version === '1' ? 'F32' : 'F32, BF16, F16'} data only`);
    }
    // An F64 tensor is not even valid safetensors here; refused by the header parser.
    const f64 = Buffer.from(JSON.stringify({ x: { dtype: 'F64', shape: [1], data_offsets: [0, 8] }, __metadata__: { format: 'trainer-checkpoint-shard', format_version: '2' } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(f64.length));
    await writeFile(join(dir, 'f64'), Buffer.concat([prefix, f64, Buffer.alloc(8)]));
    expect((await ShardFile.open(join(dir, 'f64')).catch((e) => e)).message).toMatch(/unsupported dtype F64/);
    // Kinds in the wrong dtype: params16 as F32, params as BF16.
    const toy = [{ name: 'a', shape: [4] }];
    for (const [tensor, dtype] of [['params16/a', 'F32'], ['params/a', 'BF16']] as const) {
      const shard = await ShardFile.open(await write(`${tensor.replace('/', '-')}-${dtype}`, dtype, '2', tensor));
      expect(() => tensorEntriesFromShards(toy, [{ file: 'x', shard }])).toThrow(dtype === 'F32' ? /params16\/a is F32; 16-bit parameters are BF16 or F16/ : /params\/a is BF16; params is saved as F32/);
      await shard.close();
    }
    expect(() => shardTensors(TENSORS, [{ flatStart: 0, flatEnd: 1, params: new Float32Array(1), params16: new Uint16Array(1), m: new Float32Array(1), v: new Float32Array(1) }])).toThrow(/no params16 dtype was given/);
  });

  it('refuses manifests whose 16-bit state does not match their precision, version, pieces or shards', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt16-'));
    const dir = await saveFixture(root, 3, 2, 0, 'bf16');
    const path = join(dir, MANIFEST_FILE);
    const good: Manifest = JSON.parse(await readFile(path, 'utf8'));
    const refused = async (edit: (m: Manifest) => void): Promise<string> => {
      const m = structuredClone(good);
      edit(m);
      await writeFile(path, JSON.stringify(m));
      const err = await CheckpointReader.open(dir).catch((e) => e);
      expect(err.code).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
      return err.message as string;
    };
    expect(await refused((m) => (m.stateDtypes!.params16 = 'F16'))).toMatch(/stateDtypes.params16 is F16, but the run was bf16: its checkpoint holds its working parameters as BF16/);
    expect(await refused((m) => (m.layout.precision = 'fp32'))).toMatch(/stateDtypes.params16 is BF16, but the run was fp32: its checkpoint holds no 16-bit parameters/);
    expect(await refused((m) => delete m.stateDtypes)).toMatch(/stateDtypes is missing/);
    expect(await refused((m) => (m.version = 1))).toMatch(/stateDtypes is a version 2 field/);
    expect(await refused((m) => delete m.tensors[1].state.params16)).toMatch(/b lacks params16 pieces/);
    expect(await refused((m) => (m.tensors[0].state.params16![0].length *= 2))).toMatch(/a \(params16\): \d+ bytes for \d+ BF16 elements/);
    // A params16 piece placed on F32 data (a manifest that disagrees with its shard): verify and read name the shard.
    const m = structuredClone(good);
    const [p16, p32] = [m.tensors[0].state.params16![0], m.tensors[0].state.params[0]];
    expect(p16.file).toBe(p32.file);
    p16.offset = p32.offset;
    await writeFile(path, JSON.stringify(m));
    const report = await verifyCheckpoint(dir);
    expect(report.problems.map((p) => p.code)).toEqual(['TRAINER_ERR_CHECKPOINT_FORMAT']);
    expect(report.problems[0].message).toContain(`${join(dir, p16.file)}: a (params16) is BF16 in the manifest, but the file's tensor params/a there is F32`);
    const reader = await CheckpointReader.open(dir);
    expect(await codeOf(readFlatRange(reader, TENSORS, 'params16', 0, 11))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
    await reader.close();
  });
});
