import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointName, listCheckpoints, readLatest, resolveCheckpointDir, tmpCheckpointName } from './checkpoint-paths.js';
import { removeAbandoned } from './commit.js';
import { checkTensorsMatch, readFlatRange, type FlatTensor } from './flat-layout.js';
import { MANIFEST_FILE, MANIFEST_VERSION, TRAINING_STATE_KINDS } from './manifest.js';
import { CheckpointReader } from './reader.js';
import { packShard, shardSize } from './shard-file.js';
import { newestVerified, verifyCheckpoint } from './verify.js';
import { codeOf, localValues, saveFixture, saveLayout, split, TENSORS, toyWriter as writer, tpTensors, type RankLayout } from './testing/toy-checkpoint.js';

/**
 * The toy model of testing/toy-checkpoint.ts saved by 2 or 3 ranks with pieces that cut through
 * tensors, committed, read back under other layouts, and broken in every way the issue names;
 * and a tensor-parallel layout read back under another one.
 */
afterAll(() => writer.close());

describe('sharded checkpoints', () => {
  it('commits, then reads any flat range back under any layout, touching only the bytes asked for', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const dir = await saveFixture(root, 7, 3);
    expect(dir).toBe(join(root, 'step-000007'));
    expect(await readLatest(root)).toBe('step-000007');
    expect((await readdir(root)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    const reader = await CheckpointReader.open(root); // the checkpoints folder resolves to latest
    checkTensorsMatch(reader, TENSORS);
    for (const kind of TRAINING_STATE_KINDS) {
      const all = await readFlatRange(reader, TENSORS, kind, 0, 11);
      expect(Array.from(all)).toEqual(Array.from(localValues(TENSORS, kind, 7)));
    }
    // A rank of a 2-way layout reading its piece of unit 1: 3 elements, 12 bytes per kind.
    const before = reader.bytesRead;
    expect(Array.from(await readFlatRange(reader, TENSORS, 'v', 6, 9))).toEqual(Array.from(localValues(TENSORS, 'v', 7).subarray(6, 9)));
    expect(reader.bytesRead - before).toBe(12);
    await reader.close();
    const report = await verifyCheckpoint(dir);
    expect(report.problems).toEqual([]);
    expect(report.files.map((f) => f.ok)).toEqual([true, true, true]);
  });

  it('tensor parallel: shards of column- and row-parallel regions, replicas written once, read back under another tp degree and as full tensors', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt-'));
    // 4 ranks: tp 2 x dp 2; each tp rank's flat vector in two units, split over the dp ranks.
    const ranks: RankLayout[] = [];
    for (let t = 0; t < 2; t++) {
      const tensors = tpTensors(2, t);
      const units: [number, number][] = [[0, tensors[1].offset], [tensors[1].offset, tensors[2].offset + 6]];
      for (let d = 0; d < 2; d++) ranks.push({ tensors, pieces: units.map(([s, e]) => split(s, e, 2, d)) });
    }
    const dir = await saveLayout(root, 5, ranks);
    const reader = await CheckpointReader.open(dir);
    // b (elements 16-21 of tp rank 0's vector) lies in dp rank 0's half of unit 2; tp rank 1 (ranks 2, 3) does not write its replica.
    expect(reader.manifest.tensors.find((t) => t.name === 'b')!.state.params.map((p) => p.file)).toEqual(['rank-0.safetensors']);
    expect(reader.manifest.tensors.find((t) => t.name === 'c')!.state.v.map((p) => [p.file, p.slice.rows])).toEqual([
      ['rank-1.safetensors', [0, 3]], ['rank-3.safetensors', [3, 6]],
    ]);
    expect(reader.manifest.tensors.find((t) => t.name === 'a')!.state.m[0].slice.cols).toEqual([[0, 2], [4, 6]]);
    // The whole model (one rank, no tensor parallelism) and a tp-4 rank's view of it.
    for (const kind of TRAINING_STATE_KINDS) {
      const whole: FlatTensor[] = [{ name: 'a', shape: [4, 8], offset: 0 }, { name: 'b', shape: [6], offset: 32 }, { name: 'c', shape: [6, 2], offset: 38 }];
      expect(Array.from(await readFlatRange(reader, whole, kind, 0, 50)), kind).toEqual(Array.from(localValues(whole, kind, 5)));
      const other: FlatTensor[] = [
        { name: 'a', shape: [4, 8], offset: 0, region: { rows: [1, 3], cols: [[1, 4]] } },
        { name: 'c', shape: [6, 2], offset: 6, region: { rows: [3, 5] } },
        { name: 'b', shape: [6], offset: 10, region: { cols: [[2, 5]] } },
      ];
      expect(Array.from(await readFlatRange(reader, other, kind, 2, 13)), kind).toEqual(Array.from(localValues(other, kind, 5).subarray(2, 13)));
    }
    await reader.close();
    // A layout that writes the replicated tensor twice is refused at commit (overlapping pieces).
    const twice = ranks.map((r) => ({ ...r, tensors: r.tensors.map((t) => ({ ...t, owned: true })) }));
    await expect(saveLayout(root, 6, twice)).rejects.toThrow(/b \(params\): overlapping pieces/);
  });

  it('keeps the newest K, removes older ones only after a newer commit, and replaces a same-step folder', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt-'));
    for (const step of [2, 4, 6]) await saveFixture(root, step, 2, 2);
    expect((await listCheckpoints(root)).map((c) => c.name)).toEqual(['step-000004', 'step-000006']);
    // A run resumed from step 4 commits step 6 again: the folder is replaced, latest follows.
    await saveFixture(root, 6, 3, 2);
    const reader = await CheckpointReader.open(join(root, checkpointName(6)));
    expect(reader.manifest.layout.world).toBe(3);
    await reader.close();
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
    // Interrupted saves leave temporary folders; they are removed, a live run's are kept.
    await mkdir(join(root, tmpCheckpointName(8, 'old')));
    await mkdir(join(root, tmpCheckpointName(8, 'live')));
    expect(await removeAbandoned(root, 'live')).toEqual([tmpCheckpointName(8, 'old')]);
  });

  it('names the file for a missing or truncated shard, a checksum mismatch, a newer version and a foreign manifest', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const dir = await saveFixture(root, 3, 2);
    const shard = join(dir, 'rank-1.safetensors');
    const original = await readFile(shard);

    await truncate(shard, original.length - 4);
    let report = await verifyCheckpoint(dir);
    expect(report.problems.map((p) => p.code)).toEqual(['TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED']);
    expect(report.problems[0].message).toContain(shard);
    const reader = await CheckpointReader.open(dir);
    expect(await codeOf(readFlatRange(reader, TENSORS, 'params', 0, 11))).toBe('TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED');
    await reader.close();

    const flipped = Buffer.from(original);
    flipped[flipped.length - 1] ^= 1;
    await writeFile(shard, flipped);
    report = await verifyCheckpoint(dir);
    expect(report.problems.map((p) => p.code)).toEqual(['TRAINER_ERR_CHECKPOINT_CHECKSUM']);
    expect(report.problems[0].message).toContain(shard);

    await rm(shard);
    report = await verifyCheckpoint(dir);
    expect(report.problems.map((p) => [p.code, p.details?.file])).toEqual([['TRAINER_ERR_CHECKPOINT_SHARD_MISSING', shard]]);
    await writeFile(shard, original);

    const manifestPath = join(dir, MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, version: MANIFEST_VERSION + 1 }));
    const newer = await CheckpointReader.open(dir).catch((e) => e);
    expect(newer.code).toBe('TRAINER_ERR_CHECKPOINT_VERSION');
    expect(newer.message).toContain(manifestPath);
    expect(newer.message).toContain('newer');
    await writeFile(manifestPath, JSON.stringify({ ...manifest, format: 'deepspeed' }));
    expect(await codeOf(CheckpointReader.open(dir))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
    // A manifest whose pieces leave a gap is refused as inconsistent.
    const gap = structuredClone(manifest);
    gap.tensors[0].state.m.pop();
    await writeFile(manifestPath, JSON.stringify(gap));
    expect((await CheckpointReader.open(dir).catch((e) => e)).message).toMatch(/a \(m\) is covered up to element/);
    // A shard of a foreign format (a plain model file) is refused by its header.
    await writeFile(manifestPath, JSON.stringify(manifest));
    await rm(manifestPath);
    expect(await codeOf(CheckpointReader.open(dir))).toBe('TRAINER_ERR_CHECKPOINT_NOT_FOUND');
  });

  it('refuses shards of another format or version by their header', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const { ShardFile } = await import('./shard-file.js');
    const { encodeSafetensors } = await import('./safetensors.js');
    const write = async (name: string, meta: Record<string, string>) => {
      const parts = encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], meta);
      await writeFile(join(dir, name), Buffer.concat(parts));
      return join(dir, name);
    };
    expect(await codeOf(ShardFile.open(await write('foreign', { format: 'pt' })))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
    expect(await codeOf(ShardFile.open(await write('v9', { format: 'trainer-checkpoint-shard', format_version: '9' })))).toBe('TRAINER_ERR_CHECKPOINT_VERSION');
    await writeFile(join(dir, 'junk'), 'not a shard at all');
    expect(await codeOf(ShardFile.open(join(dir, 'junk')))).toBe('TRAINER_ERR_CHECKPOINT_FORMAT');
    const good = await write('good', { format: 'trainer-checkpoint-shard', format_version: '1' });
    const f = await ShardFile.open(good);
    expect(Array.from(await f.readFloat32(f.dataStart, 4))).toEqual([0]);
    await expect(f.readFloat32(f.dataStart, 8)).rejects.toMatchObject({ code: 'TRAINER_ERR_CHECKPOINT_FORMAT' });
    await f.close();
  });

  it('--resume auto semantics: the newest checkpoint that verifies, skipping broken ones with the reason', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ckpt-'));
    expect((await newestVerified(root)).found).toBeUndefined();
    await saveFixture(root, 2, 2);
    const newest = await saveFixture(root, 4, 2);
    await truncate(join(newest, 'rank-0.safetensors'), 100);
    await mkdir(join(root, checkpointName(6))); // a step folder without a manifest is never loaded
    const { found, skipped } = await newestVerified(root);
    expect(found?.dir).toBe(join(root, 'step-000002'));
    expect(skipped.map((s) => [s.name, s.problem.code])).toEqual([
      ['step-000006', 'TRAINER_ERR_CHECKPOINT_NOT_FOUND'], ['step-000004', 'TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED'],
    ]);
    expect(await codeOf(resolveCheckpointDir(join(root, 'step-000006')))).toBe('TRAINER_ERR_CHECKPOINT_NOT_FOUND');
  });

  it('reuses the previous shard buffer, handed back by the writer thread, and writes the same bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const data = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
    const first = await writer.write(join(dir, 'a'), packShard([{ name: 'x', data }], { step: '9' }));
    const spare = writer.takeBuffer();
    expect(spare?.byteLength).toBe(first.bytes);
    expect(writer.takeBuffer()).toBeUndefined();
    const packed = packShard([{ name: 'x', data }], { step: '10' }, spare); // a header a few bytes longer still fits
    expect(packed.bytes.buffer).toBe(spare);
    const second = await writer.write(join(dir, 'b'), packed);
    const fresh = packShard([{ name: 'x', data }], { step: '10' });
    expect(second.sha256).toBe(createHash('sha256').update(fresh.bytes).digest('hex'));
    expect((await readFile(join(dir, 'b'))).equals(Buffer.from(fresh.bytes))).toBe(true);
    // A buffer prepared by the thread ahead of the first save, of the size shardSize predicts.
    writer.takeBuffer();
    const size = shardSize([{ name: 'x', data }], { step: '10' });
    expect(size).toBe(fresh.bytes.byteLength);
    await writer.prepare(size);
    const prepared = writer.takeBuffer();
    expect(prepared?.byteLength).toBe(size);
    expect(packShard([{ name: 'x', data }], { step: '10' }, prepared).bytes.buffer).toBe(prepared);
  });

  it('a full disk fails the write with DISK_FULL naming the file and leaves no partial file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    const packed = () => packShard([{ name: 'x', data: new Float32Array(1 << 16) }]);
    const injected = await writer.write(join(dir, 'rank-0.safetensors'), packed(), { fault: 'enospc' }).catch((e) => e);
    expect(injected.code).toBe('TRAINER_ERR_CHECKPOINT_DISK_FULL');
    expect(injected.message).toContain(join(dir, 'rank-0.safetensors'));
    expect(await readdir(dir)).toEqual([]);
    // The real thing: /dev/full answers every write with ENOSPC. The writer writes
    // <file>.partial first, so a symlink there to /dev/full makes the write hit it.
    const st = await stat('/dev/full').catch(() => undefined);
    if (st?.isCharacterDevice()) {
      const target = join(dir, 'rank-1.safetensors');
      await symlink('/dev/full', `${target}.partial`);
      const real = await writer.write(target, packed()).catch((e) => e);
      expect(real.code).toBe('TRAINER_ERR_CHECKPOINT_DISK_FULL');
      expect(real.message).toContain(target);
      expect(real.message).toMatch(/ENOSPC/);
      expect(await readdir(dir)).toEqual([]);
      expect((await stat('/dev/full')).isCharacterDevice()).toBe(true);
    }
  });
});
