import { CheckpointErrorCode, checkpointError } from './errors.js';
import { STATE_KINDS, tensorSize, type Piece, type StateKind, type TensorEntry } from './manifest.js';
import type { CheckpointReader } from './reader.js';

/**
 * Checkpoints of a flat parameter vector (FSDP/ZeRO style): the model's tensors laid end to end
 * in one fp32 vector, each rank owning ranges of it. These helpers translate between flat ranges
 * and the manifest's per-tensor pieces, in both directions:
 *
 *   flat:     [ wte ........ | wpe .... | h.0.ln_1.weight | ... ]
 *   rank r:          [ piece: flat [a, b) ]    -> wte slice [a - 0, |wte|), wpe slice [0, b - |wte|)
 */
export interface FlatTensor {
  name: string;
  shape: number[];
  /** First element in the flat vector. */
  offset: number;
}

/** One rank's range of the flat vector in a shard file, with each kind's absolute byte offset. */
export interface FlatPiece {
  flatStart: number;
  flatEnd: number;
  offsets: Record<StateKind, number>;
}

/** The manifest's tensor table from every file's flat pieces. */
export function tensorEntriesFromFlat(tensors: readonly FlatTensor[], files: readonly { file: string; pieces: readonly FlatPiece[] }[]): TensorEntry[] {
  const entries: TensorEntry[] = tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: 'F32', state: { params: [], m: [], v: [] } }));
  const sorted = tensors.map((t, i) => ({ t, i, end: t.offset + tensorSize(t.shape) })).sort((a, b) => a.t.offset - b.t.offset);
  for (const { file, pieces } of files) {
    for (const p of pieces) {
      for (const { t, i, end } of sorted) {
        const s = Math.max(p.flatStart, t.offset);
        const e = Math.min(p.flatEnd, end);
        if (e <= s) continue;
        for (const kind of STATE_KINDS) {
          const piece: Piece = { file, offset: p.offsets[kind] + (s - p.flatStart) * 4, length: (e - s) * 4, slice: { flat: [s - t.offset, e - t.offset] } };
          entries[i].state[kind].push(piece);
        }
      }
    }
  }
  for (const e of entries) for (const kind of STATE_KINDS) e.state[kind].sort((a, b) => a.slice.flat[0] - b.slice.flat[0]);
  return entries;
}

/**
 * Checks that a checkpoint holds exactly these tensors (names and shapes): resuming into another
 * model must fail by name, not by reading the wrong bytes.
 */
export function checkTensorsMatch(reader: CheckpointReader, tensors: readonly FlatTensor[]): void {
  const where = `${reader.dir}/manifest.json`;
  const mismatch = (why: string) => checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where}: ${why}`, { file: where });
  if (reader.manifest.tensors.length !== tensors.length) throw mismatch(`${reader.manifest.tensors.length} tensors, the model has ${tensors.length}`);
  for (const t of tensors) {
    const e = reader.tensor(t.name);
    if (!e) throw mismatch(`no tensor ${t.name}`);
    if (JSON.stringify(e.shape) !== JSON.stringify(t.shape)) throw mismatch(`${t.name} has shape ${JSON.stringify(e.shape)}, the model needs ${JSON.stringify(t.shape)}`);
  }
}

/** Elements [start, end) of the flat vector's state `kind`, read from whatever pieces hold them. */
export async function readFlatRange(reader: CheckpointReader, tensors: readonly FlatTensor[], kind: StateKind, start: number, end: number): Promise<Float32Array> {
  const out = new Float32Array(end - start);
  for (const t of tensors) {
    const tEnd = t.offset + tensorSize(t.shape);
    const s = Math.max(start, t.offset);
    const e = Math.min(end, tEnd);
    if (e <= s) continue;
    out.set(await reader.readSlice(kind, t.name, s - t.offset, e - t.offset), s - start);
  }
  return out;
}
