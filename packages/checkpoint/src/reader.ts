import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { resolveCheckpointDir } from './checkpoint-paths.js';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { MANIFEST_FILE, parseManifest, SHARED_OUTER_KINDS, stateDtype, stateKinds, type Manifest, type StateKind, type TensorEntry } from './manifest.js';
import { forEachRun, regionProblem, regionSize, type Region } from './region.js';
import { dtypeBytes, ShardFile } from './shard-file.js';

/** A stored run: tensor elements [start, start + n) at byte `byte` of `file`. */
interface StoredRun {
  start: number;
  n: number;
  file: string;
  byte: number;
}

/** Reads closer than this many bytes apart in one file are merged into one read. */
const MERGE_GAP_BYTES = 64 * 1024;

/**
 * Reads a committed checkpoint, whatever layout wrote it: any slice of any tensor's state is
 * assembled from the pieces that cover it, reading only those bytes. A rank resuming under
 * another world size or ZeRO stage asks for its own ranges and touches nothing else.
 *
 * Every kind reads as fp32: `params16` (bf16/fp16 runs) is widened exactly from its 16-bit codes.
 * Opening checks the manifest (format, version, consistency) and, per shard on first use, its
 * size and header; full checksums are verifyCheckpoint's job (a resume verifies first).
 */
export class CheckpointReader {
  private readonly byName: Map<string, TensorEntry>;
  private readonly shards = new Map<string, Promise<ShardFile>>();
  private readonly runIndex = new Map<string, StoredRun[]>();
  /** Bytes read from shard files so far (for "reads only what it needs"). */
  bytesRead = 0;

  private constructor(readonly dir: string, readonly manifest: Manifest) {
    this.byName = new Map(manifest.tensors.map((t) => [t.name, t]));
  }

  /** Opens a checkpoint folder, a checkpoints folder (its latest) or a run folder. */
  static async open(path: string): Promise<CheckpointReader> {
    const dir = await resolveCheckpointDir(path);
    return new CheckpointReader(dir, await readManifest(dir));
  }

  tensor(name: string): TensorEntry | undefined {
    return this.byName.get(name);
  }

  /** Elements [start, end) of the row-major flattened tensor `name`'s state `kind`. */
  readSlice(kind: StateKind, name: string, start: number, end: number): Promise<Float32Array> {
    return this.readRegion(kind, name, undefined, start, end);
  }

  /**
   * Elements [start, end) of `region` of tensor `name` (flattened row-major; region.ts), for a
   * rank whose layout (tensor-parallel shard, ZeRO piece) differs from the writer's: the tensor
   * elements wanted are matched against the runs each stored piece holds, and only those bytes
   * are read (nearby ones in one read).
   */
  async readRegion(kind: StateKind, name: string, region: Region | undefined, start: number, end: number, replica = 0): Promise<Float32Array> {
    const t = this.byName.get(name);
    if (!t) throw checkpointError(CheckpointErrorCode.FORMAT, `${join(this.dir, MANIFEST_FILE)} has no tensor ${name}`, { file: join(this.dir, MANIFEST_FILE) });
    const problem = regionProblem(t.shape, region);
    const size = regionSize(t.shape, region);
    if (problem || !(start >= 0 && start <= end && end <= size)) throw new RangeError(`readRegion: [${start}, ${end}) of ${name} ${JSON.stringify(region ?? {})}: ${problem ?? `outside ${size} elements`}`);
    const dtype = stateDtype(this.manifest, kind);
    if (!dtype) {
      throw checkpointError(CheckpointErrorCode.FORMAT, `${join(this.dir, MANIFEST_FILE)} holds no ${kind} (written under ${this.manifest.layout.precision}: it holds ${stateKinds(this.manifest).join(', ')})`, { file: join(this.dir, MANIFEST_FILE) });
    }
    const replicas = this.manifest.outer?.replicas ?? 1;
    if (!(Number.isInteger(replica) && replica >= 0 && replica < replicas)) {
      throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${join(this.dir, MANIFEST_FILE)} holds ${replicas} replica(s); replica ${replica} was asked for`, { file: join(this.dir, MANIFEST_FILE) });
    }
    const bytes = dtypeBytes(dtype);
    const stored = this.storedRuns(t, kind, bytes, (SHARED_OUTER_KINDS as readonly StateKind[]).includes(kind) ? 0 : replica);
    // What to copy: (file, byte, length in elements, position in the output).
    const copies: { file: string; byte: number; n: number; out: number }[] = [];
    forEachRun(t.shape, region, start, end, (g, r, n) => {
      let i = lowerBound(stored, g);
      for (let at = g; at < g + n; i++) {
        const s = stored[i];
        const take = Math.min(g + n, s.start + s.n) - at;
        copies.push({ file: s.file, byte: s.byte + (at - s.start) * bytes, n: take, out: r - start + (at - g) });
        at += take;
      }
    });
    const out = new Float32Array(end - start);
    copies.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.byte - b.byte));
    for (let i = 0; i < copies.length;) {
      // One read for a run of copies from the same file with small gaps between them.
      let j = i + 1;
      let last = copies[i].byte + copies[i].n * bytes;
      while (j < copies.length && copies[j].file === copies[i].file && copies[j].byte - last <= MERGE_GAP_BYTES) {
        last = Math.max(last, copies[j].byte + copies[j].n * bytes);
        j++;
      }
      const shard = await this.shard(copies[i].file);
      const span = await shard.readFloat32(copies[i].byte, last - copies[i].byte);
      this.bytesRead += last - copies[i].byte;
      for (let k = i; k < j; k++) {
        const at = (copies[k].byte - copies[i].byte) / bytes;
        out.set(span.subarray(at, at + copies[k].n), copies[k].out);
      }
      i = j;
    }
    return out;
  }

  /** Every run of tensor elements the pieces of `replica`'s state `kind` of `t` (`bytes` per element) hold, sorted (they tile it: manifest.ts checks). */
  private storedRuns(t: TensorEntry, kind: StateKind, bytes: number, replica: number): StoredRun[] {
    const key = `${kind}/${t.name}/${replica}`;
    let runs = this.runIndex.get(key);
    if (!runs) {
      runs = [];
      for (const p of t.state[kind] ?? []) {
        if ((p.replica ?? 0) !== replica) continue;
        const [s, e] = p.slice.flat;
        forEachRun(t.shape, p.slice, s, e, (g, r, n) => runs!.push({ start: g, n, file: p.file, byte: p.offset + (r - s) * bytes }));
      }
      runs.sort((a, b) => a.start - b.start);
      this.runIndex.set(key, runs);
    }
    return runs;
  }

  /** The tokenizer file saved with the checkpoint (its hash checked), or undefined. */
  async readTokenizer(): Promise<string | undefined> {
    const tok = this.manifest.tokenizer;
    if (!tok) return undefined;
    const path = join(this.dir, tok.file);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw checkpointError(CheckpointErrorCode.SHARD_MISSING, `the checkpoint's tokenizer ${path} is missing`, { cause: err, file: path });
    }
    if (createHash('sha256').update(bytes).digest('hex') !== tok.sha256) {
      throw checkpointError(CheckpointErrorCode.CHECKSUM, `${path} does not match the SHA-256 recorded in the manifest`, { file: path });
    }
    return bytes.toString('utf8');
  }

  async close(): Promise<void> {
    const opened = [...this.shards.values()];
    this.shards.clear();
    for (const s of opened) await s.then((f) => f.close(), () => undefined);
  }

  private shard(file: string): Promise<ShardFile> {
    let s = this.shards.get(file);
    if (!s) {
      const entry = this.manifest.files.find((f) => f.name === file)!;
      s = ShardFile.open(join(this.dir, file), entry.bytes).then(async (shard) => {
        try {
          checkShardPieces(this.manifest, file, shard);
        } catch (err) {
          await shard.close();
          throw err;
        }
        return shard;
      });
      this.shards.set(file, s);
    }
    return s;
  }
}

/**
 * Checks the manifest's pieces in shard `file` against the shard's own header: each lies inside
 * one tensor of the file, of the dtype the manifest records for its kind (a params16 piece in
 * BF16 data of a bf16 run, every other kind in F32 data).
 */
export function checkShardPieces(manifest: Manifest, file: string, shard: ShardFile): void {
  for (const t of manifest.tensors) {
    for (const kind of stateKinds(manifest)) {
      const dtype = stateDtype(manifest, kind)!;
      for (const p of t.state[kind] ?? []) {
        if (p.file !== file || p.length === 0) continue;
        const e = shard.entryAt(p.offset, p.length);
        if (!e) throw checkpointError(CheckpointErrorCode.FORMAT, `${shard.path}: the manifest places ${t.name} (${kind}) at bytes [${p.offset}, ${p.offset + p.length}), outside the file's tensors`, { file: shard.path });
        if (e.dtype !== dtype) {
          throw checkpointError(CheckpointErrorCode.FORMAT, `${shard.path}: ${t.name} (${kind}) is ${dtype} in the manifest, but the file's tensor ${e.name} there is ${e.dtype}`, { file: shard.path, details: { tensor: e.name, dtype: e.dtype, expected: dtype } });
        }
      }
    }
  }
}

/** Index of the run containing element g (runs tile the tensor, sorted by start). */
function lowerBound(runs: readonly StoredRun[], g: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (runs[mid].start <= g) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Reads and validates dir/manifest.json. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > MAX_MANIFEST_BYTES) throw checkpointError(CheckpointErrorCode.FORMAT, `${path} is ${size} bytes, above the ${MAX_MANIFEST_BYTES}-byte limit for a manifest`, { file: path });
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === CheckpointErrorCode.FORMAT) throw err;
    throw checkpointError(CheckpointErrorCode.NOT_FOUND, `${dir} has no readable ${MANIFEST_FILE}: a checkpoint without a manifest is never loaded`, { cause: err, file: path });
  }
  return parseManifest(text, path);
}

/** Upper bound on manifest.json (a few hundred bytes per tensor piece; far below this). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
