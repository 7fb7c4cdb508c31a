import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFlatRange } from './flat-layout.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { CheckpointReader } from './reader.js';
import { codeOf, localValues, saveLayout, split, TENSORS, toyWriter, UNITS } from './testing/toy-checkpoint.js';
import { verifyCheckpoint } from './verify.js';

const root = mkdtempSync(join(tmpdir(), 'ckpt-replicas-'));
afterAll(async () => {
  await toyWriter.close();
  rmSync(root, { recursive: true, force: true });
});

/** 4 ranks = 2 DiLoCo replicas of 2 ZeRO ranks each (rank r: replica r >> 1, piece r & 1). */
const RANKS = Array.from({ length: 4 }, (_, r) => ({ tensors: TENSORS, pieces: UNITS.map(([s, e]) => split(s, e, 2, r & 1)) }));
const OUTER = { replicas: 2, syncEvery: 4, lr: 0.7, momentum: 0.9, precision: 'fp32' as const, overlap: 2 };

describe('DiLoCo checkpoints (manifest version 3)', () => {
  it('holds every replica\'s params, m and v and the outer state; each replica reads its own, the shared outer state comes from replica 0', async () => {
    const dir = await saveLayout(root, 8, RANKS, 0, 'fp32', { outer: OUTER, replicaOf: (r) => r >> 1 });
    expect((await verifyCheckpoint(dir)).problems).toEqual([]);
    const reader = await CheckpointReader.open(dir);
    expect(reader.manifest.version).toBe(3);
    for (const replica of [0, 1]) {
      for (const kind of ['params', 'm', 'v'] as const) {
        expect(Array.from(await readFlatRange(reader, TENSORS, kind, 0, 11, replica)), `${kind} of replica ${replica}`).toEqual(Array.from(localValues(TENSORS, kind, 8 + 100 * replica)));
      }
      expect(Array.from(await readFlatRange(reader, TENSORS, 'outer_base', 2, 9, replica))).toEqual(Array.from(localValues(TENSORS, 'v', 8 + 100 * replica).subarray(2, 9)));
      expect(Array.from(await readFlatRange(reader, TENSORS, 'outer_anchor', 0, 11, replica))).toEqual(Array.from(localValues(TENSORS, 'params', 8)));
      expect(Array.from(await readFlatRange(reader, TENSORS, 'outer_momentum', 0, 11, replica))).toEqual(Array.from(localValues(TENSORS, 'm', 8)));
    }
    // A reader that names no replica (export, eval, a plain resume) gets replica 0's state.
    expect(Array.from(await reader.readSlice('params', 'b', 0, 5))).toEqual(Array.from(localValues(TENSORS, 'params', 8).subarray(6, 11)));
    expect(await codeOf(readFlatRange(reader, TENSORS, 'params', 0, 11, 2))).toBe('TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH');
    await reader.close();
  });

  it('refuses a replica with a gap, shared outer state held by another replica, and version 3 fields in a version 2 manifest', async () => {
    const dir = await saveLayout(root, 9, RANKS, 0, 'fp32', { outer: OUTER, replicaOf: (r) => r >> 1 });
    const text = readFileSync(join(dir, MANIFEST_FILE), 'utf8');
    const edit = (f: (m: any) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const m = JSON.parse(text);
      f(m);
      return () => parseManifest(JSON.stringify(m), 'manifest.json');
    };
    expect(edit(() => undefined)).not.toThrow();
    expect(edit((m) => { m.tensors[0].state.m = m.tensors[0].state.m.filter((p: { replica?: number; slice: { flat: number[] } }) => !(p.replica === 1 && p.slice.flat[0] === 0)); }))
      .toThrow(/a \(m of replica 1\): a gap at element 0/);
    expect(edit((m) => { for (const p of m.tensors[1].state.outer_anchor) p.replica = 1; })).toThrow(/b \(outer_anchor of replica 0\) is covered up to element 0 of 5/);
    expect(edit((m) => { m.version = 2; })).toThrow(/the outer \(DiLoCo\) section is a version 3 field/);
    expect(edit((m) => { delete m.outer; m.version = 2; delete m.stateDtypes.outer_base; delete m.stateDtypes.outer_anchor; delete m.stateDtypes.outer_momentum; })).toThrow(/version 3 field/);
    expect(edit((m) => { m.outer.overlap = 0; })).toThrow(/a DiLoCo checkpoint holds outer_anchor, outer_momentum; this one lists outer_anchor, outer_momentum, outer_base/);
    expect(edit((m) => { m.outer.replicas = 1; })).toThrow(/a piece of replica 1, but the checkpoint has 1 replica/);
  });
});
