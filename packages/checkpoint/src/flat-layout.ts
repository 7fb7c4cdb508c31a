import { z } from 'zod';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import type { HalfDtype } from './half-float.js';
import { STATE_KINDS, SliceSchema, type Piece, type StateDtypes, type StateKind, type TensorEntry } from './manifest.js';
import type { CheckpointReader } from './reader.js';
import { regionSize, type Region } from './region.js';
import type { ShardFile, ShardTensor } from './shard-file.js';

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
 * A shard file names its tensors `<kind>/<tensor>` (kind: params, params16, m, v) and records each tensor's slice (region and
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
  /** fp32 parameters (the master copy under 16-bit precisions). */
  params: Float32Array;
  /** bf16/fp16 runs: the working parameters' 16-bit codes, round(params) (dtype: shardTensors' `params16`). */
  params16?: Uint16Array;
  m: Float32Array;
  v: Float32Array;
  /** DiLoCo (replica 0's ranks): the outer optimizer's anchor and momentum over this range. */
  outer_anchor?: Float32Array;
  outer_momentum?: Float32Array;
  /** DiLoCo with overlapped syncs: where this replica's progress since its last sync is measured from. */
  outer_base?: Float32Array;
  /** DiLoCo between an overlapped sync and its landing (replica 0's ranks): the average's sum, unapplied. */
  outer_pending?: Float32Array;
}

/**
 * The tensors of a shard file: for every owned tensor the piece overlaps, its `<kind>/<name>`
 * data (views: packShard copies them) and its slice, all params first, then m, then v, then
 * DiLoCo's outer kinds the pieces carry, then params16 (when `params16` names its dtype: every
 * piece must carry its codes). A DiLoCo rank names its `replica` (header metadata).
 */
export function shardTensors(tensors: readonly FlatTensor[], pieces: readonly OwnedPiece[], opts: { params16?: HalfDtype; replica?: number } = {}): { tensors: ShardTensor[]; metadata: Record<string, string> } {
  const half = opts.params16;
  for (const p of pieces) {
    if ((p.params16 !== undefined) !== (half !== undefined)) {
      throw new RangeError(half ? `shardTensors: params16 is ${half}, but a piece carries no 16-bit parameters` : 'shardTensors: a piece carries 16-bit parameters, but no params16 dtype was given');
    }
    if (p.params16 && p.params16.length !== p.params.length) throw new RangeError(`shardTensors: ${p.params16.length} 16-bit parameters for ${p.params.length} fp32 ones`);
  }
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
  const piecesOf = (kind: StateKind): ShardTensor[] => parts.map((x) => {
    const name = `${kind}/${x.name}`;
    if (kind === 'params16') return { name, data: x.piece.params16!.subarray(x.from, x.to), dtype: half! };
    const data = x.piece[kind];
    if (!data) throw new RangeError(`shardTensors: a piece carries no ${kind}, another piece of the shard does`);
    return { name, data: data.subarray(x.from, x.to) };
  });
  return {
    tensors: STATE_KINDS.filter((k) => (k === 'params16' ? half !== undefined : k === 'params' || k === 'm' || k === 'v' || pieces.some((p) => p[k] !== undefined))).flatMap(piecesOf),
    metadata: { slices: JSON.stringify(slices), ...(opts.replica !== undefined ? { replica: String(opts.replica) } : {}) },
  };
}

const SlicesSchema = z.record(z.string().max(500), SliceSchema);

/**
 * The manifest's tensor table and state dtypes from the headers of every shard: each header
 * tensor `<kind>/<name>` becomes a piece of tensor `name` (one of `tensors`) with the slice its
 * file records; params, m and v must be F32, params16 BF16 or F16 (the same in every shard).
 * Whether the pieces cover every tensor exactly once is parseManifest's check.
 */
export function tensorEntriesFromShards(tensors: readonly { name: string; shape: number[] }[], shards: readonly { file: string; shard: ShardFile }[]): { tensors: TensorEntry[]; stateDtypes: StateDtypes } {
  const entries = new Map<string, TensorEntry>(tensors.map((t) => [t.name, { name: t.name, shape: [...t.shape], dtype: 'F32', state: { params: [], m: [], v: [] } }]));
  let half: HalfDtype | undefined;
  const outerKinds = new Set<StateKind>();
  for (const { file, shard } of shards) {
    const bad = (why: string) => checkpointError(CheckpointErrorCode.FORMAT, `shard file ${shard.path}: ${why}`, { file: shard.path });
    let slices: z.infer<typeof SlicesSchema>;
    try {
      slices = SlicesSchema.parse(JSON.parse(shard.metadata.slices ?? 'null'));
    } catch (err) {
      throw bad(`its header has no valid "slices" metadata (${(err as Error).message.slice(0, 200)})`);
    }
    const replicaText = shard.metadata.replica;
    const replica = replicaText === undefined ? undefined : Number(replicaText);
    if (replica !== undefined && !(Number.isInteger(replica) && replica >= 0 && String(replica) === replicaText)) throw bad(`its header's replica ${JSON.stringify(replicaText)} is not a replica index`);
    for (const e of shard.entries) {
      const cut = e.name.indexOf('/');
      const kind = e.name.slice(0, cut) as StateKind;
      const name = e.name.slice(cut + 1);
      const entry = entries.get(name);
      if (cut < 0 || !STATE_KINDS.includes(kind) || !entry) throw bad(`tensor ${e.name} is not <${STATE_KINDS.join('|')}>/<a tensor of the model>`);
      const slice = slices[name];
      if (!slice) throw bad(`no slice recorded for ${name}`);
      if (kind === 'params16') {
        if (e.dtype !== 'BF16' && e.dtype !== 'F16') throw bad(`tensor ${e.name} is ${e.dtype}; 16-bit parameters are BF16 or F16`);
        if (half && e.dtype !== half) throw bad(`tensor ${e.name} is ${e.dtype}, other 16-bit parameters of the checkpoint are ${half}`);
        half = e.dtype;
      } else if (e.dtype !== 'F32') {
        throw bad(`tensor ${e.name} is ${e.dtype}; ${kind} is saved as F32`);
      }
      if (kind.startsWith('outer_')) outerKinds.add(kind);
      const piece: Piece = { file, offset: shard.dataStart + e.begin, length: e.end - e.begin, slice, ...(replica !== undefined ? { replica } : {}) };
      (entry.state[kind] ??= []).push(piece);
    }
  }
  // A kind some tensor has pieces of is listed for every tensor (coverage is checked per tensor).
  if (half) for (const t of entries.values()) t.state.params16 ??= [];
  for (const k of outerKinds) for (const t of entries.values()) t.state[k] ??= [];
  const outer = Object.fromEntries([...outerKinds].map((k) => [k, 'F32' as const]));
  return { tensors: [...entries.values()], stateDtypes: { params: 'F32', m: 'F32', v: 'F32', ...outer, ...(half ? { params16: half } : {}) } };
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

/** Elements [start, end) of the local flat vector's state `kind` (of DiLoCo's `replica`, default 0), read from whatever pieces hold them. */
export async function readFlatRange(reader: CheckpointReader, tensors: readonly FlatTensor[], kind: StateKind, start: number, end: number, replica = 0): Promise<Float32Array> {
  const out = new Float32Array(end - start);
  for (const t of tensors) {
    const s = Math.max(start, t.offset);
    const e = Math.min(end, t.offset + localSize(t));
    if (e <= s) continue;
    out.set(await reader.readRegion(kind, t.name, t.region, s - t.offset, e - t.offset, replica), s - start);
  }
  return out;
}
