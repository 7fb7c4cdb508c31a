import { open, type FileHandle } from 'node:fs/promises';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { widenHalf, type HalfDtype } from './half-float.js';
import { bytesOf, encodeSafetensors, headerLength, parseSafetensorsHeader, type NamedTensor, type SafetensorsEntry } from './safetensors.js';

/**
 * A shard file: the part of a checkpoint one rank writes, in the safetensors layout
 *
 *   [u64 N][JSON header: { "<name>": {dtype F32 | BF16 | F16, shape [n], data_offsets}, ...,
 *            "__metadata__": { format: "trainer-checkpoint-shard", format_version: "2", ... } }]
 *   [raw little-endian data of every tensor, in header order]
 *
 * Tensors are flat pieces (1-D); which logical tensor each covers is the manifest's business.
 * Version 2 added 16-bit pieces (BF16, F16: the working parameters of a mixed-precision run);
 * version 1 shards (fp32 only) are still read. A shard is packed into one buffer (the only
 * synchronous cost of a save: one copy of the state out of the trainer) and then written by a
 * thread; readers open the header and read only the byte ranges they need, 16-bit data widened
 * to fp32 exactly.
 */
export const SHARD_FORMAT = 'trainer-checkpoint-shard';
export const SHARD_FORMAT_VERSION = 2;

/** The element types a shard of each version may hold. */
const SHARD_DTYPES: Record<string, readonly ShardDtype[]> = { '1': ['F32'], '2': ['F32', 'BF16', 'F16'] };

export type ShardDtype = 'F32' | HalfDtype;

/** Bytes per element of a shard dtype. */
export function dtypeBytes(dtype: ShardDtype): 2 | 4 {
  return dtype === 'F32' ? 4 : 2;
}

/** One flat piece to pack: fp32 values, or raw 16-bit codes of a half dtype. */
export type ShardTensor = { name: string; data: Float32Array; dtype?: 'F32' } | { name: string; data: Uint16Array; dtype: HalfDtype };

/** A reused buffer may be this much larger than the shard (headers vary by a few bytes). */
const REUSE_SLACK_BYTES = 64 * 1024;

export interface PackedShard {
  /** The whole file: prefix, header, data (from the start of its buffer, which it owns; a writer thread may take it). */
  bytes: Uint8Array;
  /** Absolute byte offset in the file of each tensor's data, by name. */
  offsets: Map<string, number>;
}

/**
 * Lays the file out in one buffer, copying every tensor's data into it: `reuse` (a previous
 * save's buffer, when large enough: writing into memory already mapped is several times faster
 * than into a fresh allocation, and this copy is what training waits for) or a new one.
 */
export function packShard(tensors: readonly ShardTensor[], metadata: Record<string, string> = {}, reuse?: ArrayBuffer): PackedShard {
  // encodeSafetensors only references the data; the header parts are small.
  const parts = encodeShard(tensors, metadata);
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const bytes = reuse && reuse.byteLength >= total && reuse.byteLength <= total + REUSE_SLACK_BYTES ? new Uint8Array(reuse, 0, total) : new Uint8Array(total);
  const offsets = new Map<string, number>();
  let at = 0;
  parts.forEach((p, i) => {
    if (i >= 2) offsets.set(tensors[i - 2].name, at);
    bytes.set(p, at);
    at += p.byteLength;
  });
  return { bytes, offsets };
}

/** The byte size packShard will give these tensors and metadata (nothing is copied). */
export function shardSize(tensors: readonly ShardTensor[], metadata: Record<string, string> = {}): number {
  return encodeShard(tensors, metadata).reduce((s, p) => s + p.byteLength, 0);
}

/** The file's parts (prefix, header, every tensor's bytes by reference), our format and version in the metadata. */
function encodeShard(tensors: readonly ShardTensor[], metadata: Record<string, string>): Uint8Array[] {
  const meta = { ...metadata, format: SHARD_FORMAT, format_version: String(SHARD_FORMAT_VERSION) };
  return encodeSafetensors(tensors.map((t): NamedTensor => ({ name: t.name, dtype: t.dtype ?? 'F32', shape: [t.data.length], data: bytesOf(t.data) })), meta);
}

/** An open shard file: header validated, data read by byte range. */
export class ShardFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
    readonly dataStart: number,
    readonly entries: readonly SafetensorsEntry[],
    readonly metadata: Record<string, string>,
  ) {}

  /**
   * Opens and validates a shard: present, `expectedBytes` long when given (else truncated),
   * a safetensors header of our format and a version this code reads.
   */
  static async open(path: string, expectedBytes?: number): Promise<ShardFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw checkpointError(CheckpointErrorCode.SHARD_MISSING, `shard file ${path} is missing`, { cause: err, file: path });
      throw checkpointError(CheckpointErrorCode.FORMAT, `cannot open shard file ${path}: ${(err as Error).message}`, { cause: err, file: path });
    }
    try {
      const size = (await fh.stat()).size;
      if (expectedBytes !== undefined && size !== expectedBytes) {
        throw checkpointError(CheckpointErrorCode.SHARD_TRUNCATED, `shard file ${path} is ${size} bytes, the manifest says ${expectedBytes}`, { file: path, details: { size, expectedBytes } });
      }
      const prefix = new Uint8Array(8);
      await fh.read(prefix, 0, 8, 0);
      let parsed: ReturnType<typeof parseSafetensorsHeader>;
      let n: number;
      try {
        n = headerLength(prefix, size, path);
        const json = new Uint8Array(n);
        await fh.read(json, 0, n, 8);
        parsed = parseSafetensorsHeader(json, size - 8 - n, path);
      } catch (err) {
        throw checkpointError(CheckpointErrorCode.FORMAT, `shard file ${path} has no valid header: ${(err as Error).message}`, { cause: err, file: path });
      }
      const { format, format_version: version } = parsed.metadata;
      if (format !== SHARD_FORMAT) {
        throw checkpointError(CheckpointErrorCode.FORMAT, `${path} is not a trainer checkpoint shard (format ${JSON.stringify(format ?? null)})`, { file: path });
      }
      const dtypes = version !== undefined && Object.hasOwn(SHARD_DTYPES, version) ? SHARD_DTYPES[version] : undefined;
      if (!dtypes) {
        throw checkpointError(CheckpointErrorCode.VERSION, `shard file ${path} has format version ${version}; this trainer reads versions 1 to ${SHARD_FORMAT_VERSION}`, { file: path, details: { version } });
      }
      const odd = parsed.entries.find((e) => !(dtypes as readonly string[]).includes(e.dtype));
      if (odd) {
        throw checkpointError(CheckpointErrorCode.FORMAT, `shard file ${path}: tensor ${odd.name} has dtype ${odd.dtype}; a version ${version} checkpoint shard holds ${dtypes.join(', ')} data only`, {
          file: path, details: { tensor: odd.name, dtype: odd.dtype, version },
        });
      }
      return new ShardFile(path, fh, size, 8 + n, parsed.entries, parsed.metadata);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** The header tensor holding [offset, offset + length) (absolute bytes) whole, if one does. */
  entryAt(offset: number, length: number): SafetensorsEntry | undefined {
    return this.entries.find((e) => offset >= this.dataStart + e.begin && offset + length <= this.dataStart + e.end);
  }

  /** Whether [offset, offset + length) (absolute bytes) lies inside one tensor of the header (of `dtype`, when given). */
  covers(offset: number, length: number, dtype?: ShardDtype): boolean {
    const e = this.entryAt(offset, length);
    return e !== undefined && (dtype === undefined || e.dtype === dtype);
  }

  /**
   * Reads `length` bytes of one tensor's data at absolute `offset` as fp32 values: F32 as
   * stored, BF16 and F16 widened exactly (length / 2 values).
   */
  async readFloat32(offset: number, length: number): Promise<Float32Array> {
    const e = this.entryAt(offset, length);
    const size = e ? dtypeBytes(e.dtype as ShardDtype) : 4;
    if (!e || (offset - this.dataStart - e.begin) % size !== 0 || length % size !== 0) {
      throw checkpointError(CheckpointErrorCode.FORMAT, `bytes [${offset}, ${offset + length}) of ${this.path} are not whole elements of one tensor`, { file: this.path });
    }
    const raw = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(raw, done, length - done, offset + done);
      if (bytesRead === 0) throw checkpointError(CheckpointErrorCode.SHARD_TRUNCATED, `shard file ${this.path} ended at byte ${offset + done} while reading`, { file: this.path });
      done += bytesRead;
    }
    if (e.dtype === 'F32') return new Float32Array(raw.buffer, 0, length / 4);
    return widenHalf(e.dtype as HalfDtype, new Uint16Array(raw.buffer, 0, length / 2));
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
