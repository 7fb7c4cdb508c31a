import { open, type FileHandle } from 'node:fs/promises';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { bytesOf, encodeSafetensors, headerLength, parseSafetensorsHeader, type SafetensorsEntry } from './safetensors.js';

/**
 * A shard file: the part of a checkpoint one rank writes, in the safetensors layout
 *
 *   [u64 N][JSON header: { "<name>": {dtype F32, shape [n], data_offsets}, ...,
 *            "__metadata__": { format: "trainer-checkpoint-shard", format_version: "1", ... } }]
 *   [raw little-endian fp32 data of every tensor, in header order]
 *
 * Tensors are flat pieces (1-D); which logical tensor each covers is the manifest's business.
 * A shard is packed into one buffer (the only synchronous cost of a save: one copy of the state
 * out of the trainer) and then written by a thread; readers open the header and read only the
 * byte ranges they need.
 */
export const SHARD_FORMAT = 'trainer-checkpoint-shard';
export const SHARD_FORMAT_VERSION = 1;

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
export function packShard(tensors: readonly { name: string; data: Float32Array }[], metadata: Record<string, string> = {}, reuse?: ArrayBuffer): PackedShard {
  const meta = { ...metadata, format: SHARD_FORMAT, format_version: String(SHARD_FORMAT_VERSION) };
  // encodeSafetensors only references the data; the header parts are small.
  const parts = encodeSafetensors(tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [t.data.length], data: bytesOf(t.data) })), meta);
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
export function shardSize(tensors: readonly { name: string; data: Float32Array }[], metadata: Record<string, string> = {}): number {
  const meta = { ...metadata, format: SHARD_FORMAT, format_version: String(SHARD_FORMAT_VERSION) };
  return encodeSafetensors(tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [t.data.length], data: bytesOf(t.data) })), meta).reduce((s, p) => s + p.byteLength, 0);
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
      if (version !== String(SHARD_FORMAT_VERSION)) {
        throw checkpointError(CheckpointErrorCode.VERSION, `shard file ${path} has format version ${version}; this trainer reads version ${SHARD_FORMAT_VERSION}`, { file: path });
      }
      if (parsed.entries.some((e) => e.dtype !== 'F32')) throw checkpointError(CheckpointErrorCode.FORMAT, `shard file ${path} holds a tensor that is not F32`, { file: path });
      return new ShardFile(path, fh, size, 8 + n, parsed.entries, parsed.metadata);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Whether [offset, offset + length) (absolute bytes) lies inside one tensor of the header. */
  covers(offset: number, length: number): boolean {
    return this.entries.some((e) => offset >= this.dataStart + e.begin && offset + length <= this.dataStart + e.end);
  }

  /** Reads `length` bytes of fp32 data at absolute `offset`. */
  async readFloat32(offset: number, length: number): Promise<Float32Array> {
    if (offset % 4 !== 0 || length % 4 !== 0 || !this.covers(offset, length)) {
      throw checkpointError(CheckpointErrorCode.FORMAT, `bytes [${offset}, ${offset + length}) of ${this.path} are not fp32 data of one tensor`, { file: this.path });
    }
    const out = new Float32Array(length / 4);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(new Uint8Array(out.buffer, done, length - done), 0, length - done, offset + done);
      if (bytesRead === 0) throw checkpointError(CheckpointErrorCode.SHARD_TRUNCATED, `shard file ${this.path} ended at byte ${offset + done} while reading`, { file: this.path });
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
