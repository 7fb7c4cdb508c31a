import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpCheckpointName } from '../checkpoint-paths.js';
import { commitCheckpoint } from '../commit.js';
import { shardTensors, tensorEntriesFromShards, type FlatTensor } from '../flat-layout.js';
import { halfDtypeOf, MANIFEST_VERSION, MANIFEST_VERSION_PLAIN, type Manifest, type OuterManifest } from '../manifest.js';
import { forEachRun, regionSize } from '../region.js';
import { packShard, ShardFile } from '../shard-file.js';
import { ShardWriter } from '../shard-writer.js';

/**
 * Toy checkpoints for the package's tests: a two-tensor "model" (a [2,3], b [5]: an 11-element
 * flat vector) saved by any number of ranks with pieces that cut through tensors, and a
 * tensor-parallel layout; every element's value (and 16-bit code) is a function of its state,
 * tensor, index and the step, so any read can be checked against the formula.
 */
export const TENSORS: FlatTensor[] = [{ name: 'a', shape: [2, 3], offset: 0 }, { name: 'b', shape: [5], offset: 6 }];
export const UNITS = [[0, 6], [6, 11]];
export const KIND_BASE = { params: 0.5, m: 1000, v: 2000 };
/** Every element's value: a function of the state, the tensor, its index in the full tensor and the step. */
export const value = (kind: keyof typeof KIND_BASE, tensor: string, i: number, step: number) => KIND_BASE[kind] + (tensor === 'a' ? 0 : 100) + i + step / 8;

/** The writer the helpers save with (one thread; close it after the tests). */
export const toyWriter = new ShardWriter();

export type Precision = 'fp32' | 'bf16' | 'fp16';

/** Balanced split of [s, e) into `world` parts (as ZeroPartition does per unit). */
export function split(s: number, e: number, world: number, rank: number): [number, number] {
  const n = e - s;
  const base = Math.floor(n / world);
  const extra = n % world;
  const start = s + rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

/** One rank: its local flat tensors (regions of the full ones) and its owned ranges of that vector. */
export interface RankLayout { tensors: FlatTensor[]; pieces: [number, number][] }

/** The local flat vector of a rank, of state `kind`, from the full tensors' values. */
export function localValues(tensors: readonly FlatTensor[], kind: keyof typeof KIND_BASE, step: number): Float32Array {
  const size = Math.max(...tensors.map((t) => t.offset + regionSize(t.shape, t.region)));
  const out = new Float32Array(size);
  for (const t of tensors) forEachRun(t.shape, t.region, 0, regionSize(t.shape, t.region), (g, r, n) => {
    for (let i = 0; i < n; i++) out[t.offset + r + i] = value(kind, t.name, g + i, step);
  });
  return out;
}

/** 16-bit codes of the params16 state: any 16-bit pattern (subnormals, -0, infinities, NaNs included), a function of the element. */
export const halfCode = (tensor: string, i: number, step: number) => ((tensor === 'a' ? 0x3c00 : 0x8001) + i * 0x1f3d + step * 0x0101) & 0xffff;

export /** The local flat vector of a rank's params16 codes. */
function localCodes(tensors: readonly FlatTensor[], step: number): Uint16Array {
  const size = Math.max(...tensors.map((t) => t.offset + regionSize(t.shape, t.region)));
  const out = new Uint16Array(size);
  for (const t of tensors) forEachRun(t.shape, t.region, 0, regionSize(t.shape, t.region), (g, r, n) => {
    for (let i = 0; i < n; i++) out[t.offset + r + i] = halfCode(t.name, g + i, step);
  });
  return out;
}

/** Bit patterns of fp32 values (NaNs compared by payload, -0 told from 0). */
export const bitsOf = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

/** DiLoCo toys: the run's outer section and each rank's replica (its params, m and v are its replica's: step + 100 x replica). */
export interface ToyOuter { outer: OuterManifest; replicaOf: (rank: number) => number }

export /** Every rank writes its shard (params16 in `precision`'s dtype unless fp32), then the checkpoint is committed under `root`. */
async function saveLayout(root: string, step: number, ranks: RankLayout[], keepLast = 0, precision: Precision = 'fp32', diloco?: ToyOuter): Promise<string> {
  const tmp = join(root, tmpCheckpointName(step, 'test'));
  await mkdir(tmp, { recursive: true });
  const files: Manifest['files'] = [];
  const shards: { file: string; shard: ShardFile }[] = [];
  for (const [rank, layout] of ranks.entries()) {
    const replica = diloco?.replicaOf(rank);
    const at = step + 100 * (replica ?? 0);
    const full = { params: localValues(layout.tensors, 'params', at), m: localValues(layout.tensors, 'm', at), v: localValues(layout.tensors, 'v', at) };
    const codes = precision === 'fp32' ? undefined : localCodes(layout.tensors, step);
    // DiLoCo's outer state: anchor and momentum (replica 0 only) as params and m of the step, the base as v of the replica's.
    const shared = replica === 0 ? { anchor: localValues(layout.tensors, 'params', step), momentum: localValues(layout.tensors, 'm', step) } : undefined;
    const pieces = layout.pieces.filter(([s, e]) => e > s).map(([s, e]) => ({
      flatStart: s, flatEnd: e, params: full.params.subarray(s, e), m: full.m.subarray(s, e), v: full.v.subarray(s, e), ...(codes ? { params16: codes.subarray(s, e) } : {}),
      ...(shared ? { outer_anchor: shared.anchor.subarray(s, e), outer_momentum: shared.momentum.subarray(s, e) } : {}),
      ...(diloco?.outer.overlap ? { outer_base: full.v.subarray(s, e) } : {}),
    }));
    const { tensors, metadata } = shardTensors(layout.tensors, pieces, { params16: halfDtypeOf(precision), replica });
    const file = `rank-${rank}.safetensors`;
    const written = await toyWriter.write(join(tmp, file), packShard(tensors, { ...metadata, rank: String(rank) }));
    files.push({ name: file, rank, bytes: written.bytes, sha256: written.sha256 });
    shards.push({ file, shard: await ShardFile.open(join(tmp, file), written.bytes) });
  }
  const { tensors, stateDtypes } = tensorEntriesFromShards(ranks[0].tensors.length === 2 ? TENSORS : TP_TENSORS, shards);
  const manifest: Manifest = {
    format: 'trainer-checkpoint', version: diloco ? MANIFEST_VERSION : MANIFEST_VERSION_PLAIN, step, optimizerStep: step, createdAt: new Date().toISOString(),
    model: { name: 'toy', config: { size: 11 } }, tokenizer: null,
    layout: { world: ranks.length, dp: ranks.length, tp: 1, pp: 1, zeroStage: 1, precision },
    training: { seed: 1 }, lrSchedule: { kind: 'warmup-cosine', lr: 1, minLr: 0.1, warmupSteps: 0, decaySteps: 10, lrAtStep: 1 },
    lossScale: null, rng: { sampler: { kind: 'stateless', seed: 1, nextStep: step }, dropout: null }, metrics: { loss: 1.5 },
    files, stateDtypes, tensors, ...(diloco ? { outer: diloco.outer } : {}),
  };
  for (const s of shards) await s.shard.close();
  return (await commitCheckpoint({ root, tmpDir: tmp, manifest, keepLast })).path;
}

/** The toy model on `world` data-parallel ranks, every unit split evenly. */
export async function saveFixture(root: string, step: number, world: number, keepLast = 0, precision: Precision = 'fp32'): Promise<string> {
  return saveLayout(root, step, Array.from({ length: world }, (_, r) => ({ tensors: TENSORS, pieces: UNITS.map(([s, e]) => split(s, e, world, r)) })), keepLast, precision);
}

/** Tensor parallel: a [4,8] column-parallel in two column groups (like q and k), b [6] replicated, c [6,2] row-parallel. */
export const TP_TENSORS = [{ name: 'a', shape: [4, 8] }, { name: 'b', shape: [6] }, { name: 'c', shape: [6, 2] }];
export function tpTensors(tp: number, t: number): FlatTensor[] {
  const w = 4 / tp; // columns of a per rank in each of the column groups [0, 4) and [4, 8)
  const a: FlatTensor = { name: 'a', shape: [4, 8], offset: 0, region: { cols: [[t * w, (t + 1) * w], [4 + t * w, 4 + (t + 1) * w]] } };
  const aSize = regionSize(a.shape, a.region);
  const b: FlatTensor = { name: 'b', shape: [6], offset: aSize, owned: t === 0 };
  const c: FlatTensor = { name: 'c', shape: [6, 2], offset: aSize + 6, region: { rows: split(0, 6, tp, t) } };
  return [a, b, c];
}

export /** The error code a promise rejects with ('no error' when it resolves). */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}
