import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { resolveCheckpointDir } from './checkpoint-paths.js';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { MANIFEST_FILE, parseManifest, tensorSize, type Manifest, type StateKind, type TensorEntry } from './manifest.js';
import { ShardFile } from './shard-file.js';

/**
 * Reads a committed checkpoint, whatever layout wrote it: any slice of any tensor's state is
 * assembled from the pieces that cover it, reading only those bytes. A rank resuming under
 * another world size or ZeRO stage asks for its own ranges and touches nothing else.
 *
 * Opening checks the manifest (format, version, consistency) and, per shard on first use, its
 * size and header; full checksums are verifyCheckpoint's job (a resume verifies first).
 */
export class CheckpointReader {
  private readonly byName: Map<string, TensorEntry>;
  private readonly shards = new Map<string, Promise<ShardFile>>();
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
  async readSlice(kind: StateKind, name: string, start: number, end: number): Promise<Float32Array> {
    const t = this.byName.get(name);
    if (!t) throw checkpointError(CheckpointErrorCode.FORMAT, `${join(this.dir, MANIFEST_FILE)} has no tensor ${name}`, { file: join(this.dir, MANIFEST_FILE) });
    const size = tensorSize(t.shape);
    if (!(start >= 0 && start <= end && end <= size)) throw new RangeError(`readSlice: [${start}, ${end}) outside ${name} (${size} elements)`);
    const out = new Float32Array(end - start);
    for (const p of t.state[kind]) {
      const [ps, pe] = p.slice.flat;
      const s = Math.max(ps, start);
      const e = Math.min(pe, end);
      if (e <= s) continue;
      const shard = await this.shard(p.file);
      out.set(await shard.readFloat32(p.offset + (s - ps) * 4, (e - s) * 4), s - start);
      this.bytesRead += (e - s) * 4;
    }
    return out;
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
      s = ShardFile.open(join(this.dir, file), entry.bytes).then((shard) => {
        for (const t of this.manifest.tensors) {
          for (const pieces of Object.values(t.state)) {
            for (const p of pieces) {
              if (p.file === file && p.length > 0 && !shard.covers(p.offset, p.length)) {
                throw checkpointError(CheckpointErrorCode.FORMAT, `${shard.path}: the manifest places ${t.name} at bytes [${p.offset}, ${p.offset + p.length}), outside the file's tensors`, { file: shard.path });
              }
            }
          }
        }
        return shard;
      });
      this.shards.set(file, s);
    }
    return s;
  }
}

/** Reads and validates dir/manifest.json. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw checkpointError(CheckpointErrorCode.NOT_FOUND, `${dir} has no readable ${MANIFEST_FILE}: a checkpoint without a manifest is never loaded`, { cause: err, file: path });
  }
  return parseManifest(text, path);
}
