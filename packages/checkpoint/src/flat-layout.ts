import { z } from 'zod';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { STATE_KINDS, SliceSchema, type Piece, type StateKind, type TensorEntry } from './manifest.js';
import type { CheckpointReader } from './reader.js';
import { regionSize, type Region } from './region.js';
import type { ShardFile } from './shard-file.js';

/**
 * Checkpoints of flat parameter vectors (FSDP/ZeRO style): a rank's tensors laid end to end in
 * one fp32 vector, of which it owns ranges (ZeRO pieces). Under tensor parallelism each tensor of
 * that vector is the rank's region of the full tensor (region.ts); under pipeline parallelism the
 * vector holds only its stage's tensors. These helpers translate between such local flat ranges
 * and the manifest's per-tensor pieces:
 *
 *   local flat:  [ wte (rows 0..V/2) | wpe | h.0.ln_1.weight | h.0.attn.c_attn.weight (cols ...) | ... ]
 *   ZeRO piece:        [ flat a .. b )         -> pieces of wte's region [a, |wte_region|), wpe [0, ...)
 *
 * A shard file names its tensors `<kind>/<tensor>` and records each tensor's slice (region and
 * flat range) in its header's `slices` metadata, so it describes itself; the coordinator builds
 * the manifest's tensor table from the headers of all shards.
 */
export interface FlatTensor {
  /** The full tensor's name (Hugging Face GPT-2). */
  name: string;
  /** The full tensor's shape. */
  shape: number[];
  /** First element of this rank's values of it in the flat vector. */
  offset: number;
  /** The part of the full tensor this vector holds (tensor parallel); all of it when absent. */
  region?: Region;
  /** False for copies another rank writes (tensor-parallel replicas, a pipeline's tied copy): read on restore, never written. */
  owned?: boolean;
}

/** Elements of the flat vector a tensor takes. */
function localSize(t: FlatTensor): number {
  return regionSize(t.shape, t.region);
}

/** A range of the flat vector a rank owns, with its values of every state kind. */
export interface OwnedPiece {
  flatStart: number;
  flatEnd: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * The tensors of a shard file: for every owned tensor the piece overlaps, its `<kind>/<name>`
 * data (views: packShard copies them) and its slice, all params first, then m, then v.
 */
export function shardTensors(tensors: readonly FlatTensor[], pieces: readonly OwnedPiece[]): { tensors: { name: string; data: Float32Array }[]; metadata: Record<string, string> } {
  const slices: Record<string, z.infer<typeof SliceSchema>> = {};
  const parts: { name: string; piece: OwnedPiece; from: number; to: number }[] = [];
  for (const p of pieces) {
    for (const t of tensors) {
      if (t.owned === false) continue;
      const s = Math.max(p.flatStart, t.offset);
      const e = Math.min(p.flatEnd, t.offset + localSize(t));
      if (e <= s) continue;
      if (slices[t.name]) throw new RangeError(`shardTensors: two pieces of ${t.name} on one rank`);
      slices[t.name] = { flat: [s - t.offset, e - t.offset], ...(t.region?.rows ? { rows: t.region.rows } : {}), ...(t.region?.cols ? { cols: t.region.cols } : {}) };
      parts.push({ name: t.name, piece: p, from: s - p.flatStart, to: e - p.flatStart });
    }
  }
  return {
    tensors: STATE_KINDS.flatMap((kind) => parts.map((x) => ({ name: `${kind}/${x.name}`, data: x.piece[kind].subarray(x.from, x.to) }))),
    metadata: { slices: JSON.stringify(slices) },
  };
}

const SlicesSchema = z.record(z.string().max(500), SliceSchema);

/**
 * The manifest's tensor table from the headers of every shard: each header tensor
 * `<kind>/<name>` becomes a piece of tensor `name` (one of `tensors`) with the slice its file
 * records. Whether the pieces cover every tensor exactly once is parseManifest's check.
 */
export function tensorEntriesFromShards(tensors: readonly { name: string; shape: number[] }[], shards: readonly { file: string; shard: ShardFile }[]): TensorEntry[] {
  const entries = new Map<string, TensorEntry>(tensors.map((t) => [t.name, { name: t.name, shape: [...t.shape], dtype: 'F32', state: { params: [], m: [], v: [] } }]));
  for (const { file, shard } of shards) {
    const bad = (why: string) => checkpointError(CheckpointErrorCode.FORMAT, `shard file ${shard.path}: ${why}`, { file: shard.path });
    let slices: z.infer<typeof SlicesSchema>;
    try {
      slices = SlicesSchema.parse(JSON.parse(shard.metadata.slices ?? 'null'));
    } catch (err) {
      throw bad(`its header has no valid "slices" metadata (${(err as Error).message.slice(0, 200)})`);
    }
    for (const e of shard.entries) {
      const cut = e.name.indexOf('/');
      const kind = e.name.slice(0, cut) as StateKind;
      const name = e.name.slice(cut + 1);
      const entry = entries.get(name);
      if (cut < 0 || !STATE_KINDS.includes(kind) || !entry) throw bad(`tensor ${e.name} is not <params|m|v>/<a tensor of the model>`);
      const slice = slices[name];
      if (!slice) throw bad(`no slice recorded for ${name}`);
      const piece: Piece = { file, offset: shard.dataStart + e.begin, length: e.end - e.begin, slice };
      entry.state[kind].push(piece);
    }
  }
  return [...entries.values()];
}

/**
 * Checks that a checkpoint holds every tensor this rank has, with the same full shapes:
 * resuming into another model must fail by name, not by reading the wrong bytes.
 */
export function checkTensorsMatch(reader: CheckpointReader, tensors: readonly FlatTensor[]): void {
  const where = `${reader.dir}/manifest.json`;
  const mismatch = (why: string) => checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where}: ${why}`, { file: where });
  for (const t of tensors) {
    const e = reader.tensor(t.name);
    if (!e) throw mismatch(`no tensor ${t.name}`);
    if (JSON.stringify(e.shape) !== JSON.stringify(t.shape)) throw mismatch(`${t.name} has shape ${JSON.stringify(e.shape)}, the model needs ${JSON.stringify(t.shape)}`);
  }
}

/** Elements [start, end) of the local flat vector's state `kind`, read from whatever pieces hold them. */
export async function readFlatRange(reader: CheckpointReader, tensors: readonly FlatTensor[], kind: StateKind, start: number, end: number): Promise<Float32Array> {
  const out = new Float32Array(end - start);
  for (const t of tensors) {
    const s = Math.max(start, t.offset);
    const e = Math.min(end, t.offset + localSize(t));
    if (e <= s) continue;
    out.set(await reader.readRegion(kind, t.name, t.region, s - t.offset, e - t.offset), s - start);
  }
  return out;
}
