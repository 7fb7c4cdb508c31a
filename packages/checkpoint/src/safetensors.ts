import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { widenHalf } from './half-float.js';

/**
 * The safetensors format (huggingface/safetensors), written and read by hand:
 *
 *   [u64 little-endian N][N bytes of JSON header, space-padded to 8-byte alignment][raw data]
 *   header = { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
 *              "__metadata__": { "<key>": "<string value>" } }
 *
 * Offsets are relative to the start of the data section, tensors are contiguous little-endian.
 * Loading only parses JSON and copies bytes: nothing in a file is ever executed. Every header is
 * checked (sizes, offsets inside the file, no overlaps, dtype x shape = length) before any tensor
 * is returned, so a truncated or foreign file is refused, not half-read.
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'U16' | 'U8';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, U16: 2, U8: 1 };

/** Upper bound on the JSON header (the reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface NamedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes (a Float32Array's buffer view, for F32). */
  data: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
}

export function bytesOf(view: Float32Array | Int32Array | Uint16Array | Uint8Array): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** A tensor as a header describes it (its bytes come separately). */
export interface TensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** The 8-byte length prefix and the padded JSON header for tensors laid out in order. */
function encodeHeader(specs: readonly TensorSpec[], metadata: Record<string, string>): { parts: Uint8Array[]; dataBytes: number } {
  if (!littleEndian()) throw new Error('safetensors: big-endian hosts are not supported');
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of specs) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.name in header) throw new RangeError(`safetensors: duplicate tensor name ${t.name}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  return { parts: [prefix, headerBytes], dataBytes: offset };
}

/** Serializes tensors and metadata into one buffer list (header first). */
export function encodeSafetensors(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Uint8Array[] {
  for (const t of tensors) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) throw new RangeError(`safetensors: ${t.name} has ${t.data.byteLength} bytes, shape ${JSON.stringify(t.shape)} ${t.dtype} needs ${expected}`);
  }
  return [...encodeHeader(tensors, metadata).parts, ...tensors.map((t) => t.data)];
}

/** Writes a file atomically (temporary name, fsync, rename). */
export async function writeSafetensors(path: string, tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Promise<void> {
  const w = await SafetensorsStreamWriter.open(path, tensors, metadata);
  try {
    for (const t of tensors) await w.write(t.data);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/**
 * A safetensors file written as its tensors' bytes arrive, in header order, without holding
 * them all (a model larger than memory streams to disk unit by unit). Atomic like
 * writeSafetensors: the file appears under its name only when close() has written every byte.
 */
export class SafetensorsStreamWriter {
  private written = 0;

  private constructor(private readonly path: string, private readonly tmp: string, private readonly fh: FileHandle, private readonly dataBytes: number) {}

  static async open(path: string, specs: readonly TensorSpec[], metadata: Record<string, string> = {}): Promise<SafetensorsStreamWriter> {
    const { parts, dataBytes } = encodeHeader(specs, metadata);
    const tmp = `${path}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w');
    try {
      for (const p of parts) await fh.write(p);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new SafetensorsStreamWriter(path, tmp, fh, dataBytes);
  }

  /** The next bytes of the tensors' data (any split: a tensor may come in several writes). */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.written + bytes.byteLength > this.dataBytes) throw new RangeError(`safetensors: ${this.path}: ${this.written + bytes.byteLength} data bytes written, the header describes ${this.dataBytes}`);
    await this.fh.write(bytes);
    this.written += bytes.byteLength;
  }

  async close(): Promise<void> {
    if (this.written !== this.dataBytes) throw new RangeError(`safetensors: ${this.path}: closed after ${this.written} of ${this.dataBytes} data bytes`);
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tmp, this.path);
  }

  /** Gives up: the partial file is removed, nothing appears under the name. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

/** TRAINER_ERR_SAFETENSORS_INVALID: `path` is not a well-formed safetensors file, because `why`. */
export function refuseSafetensors(path: string, why: string): TrainerError {
  return new TrainerError('TRAINER_ERR_SAFETENSORS_INVALID', `${path} is not a valid safetensors file: ${why}`, {
    hint: 'the file is truncated, corrupted or not a safetensors file; re-export, re-save or download it again',
  });
}

/** One tensor entry of a validated header: offsets relative to the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Validates a JSON header against a data section of `dataLen` bytes: dtypes known, shapes
 * non-negative integers, offsets inside the data, dtype x shape = length, no overlaps. Used for
 * whole files and for header-only reads of large shard files.
 */
export function parseSafetensorsHeader(json: Uint8Array, dataLen: number, path = '<buffer>'): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  const { entries, metadata } = parseSafetensorsHeaderWith(json, dataLen, path, DTYPE_BYTES);
  return { entries: entries as SafetensorsEntry[], metadata };
}

/**
 * parseSafetensorsHeader against another dtype table (`dtypeBytes`: bytes per element of each
 * dtype accepted): Hugging Face model files may hold any dtype safetensors defines.
 */
export function parseSafetensorsHeaderWith(json: Uint8Array, dataLen: number, path: string, dtypeBytes: Readonly<Record<string, number>>): { entries: Array<Omit<SafetensorsEntry, 'dtype'> & { dtype: string }>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
  } catch {
    throw refuseSafetensors(path, 'the header is not JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw refuseSafetensors(path, 'the header is not a JSON object');
  const entries: Array<Omit<SafetensorsEntry, 'dtype'> & { dtype: string }> = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!entry || typeof entry !== 'object' || Array.isArray(entry) || Object.values(entry).some((v) => typeof v !== 'string')) throw refuseSafetensors(path, '__metadata__ must map strings to strings');
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.dtype !== 'string' || !Object.hasOwn(dtypeBytes, e.dtype)) throw refuseSafetensors(path, `tensor ${name} has an unsupported dtype ${String(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw refuseSafetensors(path, `tensor ${name} has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1] || off[1] > dataLen) {
      throw refuseSafetensors(path, `tensor ${name} has data offsets outside the file (data section is ${dataLen} bytes)`);
    }
    const shape = e.shape as number[];
    const need = shape.reduce((a, b) => a * b, 1) * dtypeBytes[e.dtype];
    if (off[1] - off[0] !== need) throw refuseSafetensors(path, `tensor ${name}: ${off[1] - off[0]} bytes for shape ${JSON.stringify(shape)} ${e.dtype} (needs ${need})`);
    entries.push({ name, dtype: e.dtype, shape, begin: off[0], end: off[1] });
  }
  const spans = [...entries].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) if (spans[i].begin < spans[i - 1].end) throw refuseSafetensors(path, `tensors ${spans[i - 1].name} and ${spans[i].name} overlap`);
  return { entries, metadata };
}

/** Reads the u64 header length and checks it against the file size and the header limit. */
export function headerLength(prefix: Uint8Array, fileSize: number, path = '<buffer>'): number {
  if (fileSize < 8 || prefix.length < 8) throw refuseSafetensors(path, `only ${fileSize} bytes`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) throw refuseSafetensors(path, `header length ${n} exceeds the file or the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(n);
}

export function decodeSafetensors(bytes: Uint8Array, path = '<buffer>'): SafetensorsFile {
  const headerLen = headerLength(bytes, bytes.length, path);
  const dataStart = 8 + headerLen;
  const { entries, metadata } = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, path);
  const tensors = new Map<string, NamedTensor>();
  for (const e of entries) {
    // Copy into an aligned buffer: typed-array views need alignment, and the caller may keep it.
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: bytes.slice(dataStart + e.begin, dataStart + e.end) });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_FILE_UNREADABLE', `cannot read ${path}`, { cause: err, hint: 'check the path and its permissions' });
  }
  return decodeSafetensors(bytes, path);
}

/** The F32 data of a tensor as a Float32Array. */
export function asFloat32(t: NamedTensor): Float32Array {
  if (t.dtype !== 'F32') throw new TrainerError('TRAINER_ERR_SAFETENSORS_INVALID', `tensor ${t.name} is ${t.dtype}, expected F32`);
  return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, path);
}

/**
 * A safetensors file read by element ranges of its tensors, without loading it: the header is
 * validated once, then each read fetches only the bytes asked for (a rank loading its shard of a
 * model larger than its memory). F32 data is returned as stored, BF16 and F16 widened exactly.
 */
export class SafetensorsRangeReader {
  private constructor(readonly path: string, private readonly fh: FileHandle, private readonly dataStart: number, readonly entries: ReadonlyMap<string, SafetensorsEntry>, readonly metadata: Record<string, string>) {}

  static async open(path: string): Promise<SafetensorsRangeReader> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_FILE_UNREADABLE', `cannot read ${path}`, { cause: err, hint: 'check the path and its permissions' });
    }
    try {
      const size = (await fh.stat()).size;
      const prefix = new Uint8Array(8);
      await fh.read(prefix, 0, 8, 0);
      const n = headerLength(prefix, size, path);
      const json = new Uint8Array(n);
      await fh.read(json, 0, n, 8);
      const { entries, metadata } = parseSafetensorsHeader(json, size - 8 - n, path);
      return new SafetensorsRangeReader(path, fh, 8 + n, new Map(entries.map((e) => [e.name, e])), metadata);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Elements [start, start + n) of tensor `name` (row-major), as fp32. */
  async readFloat32(name: string, start: number, n: number): Promise<Float32Array> {
    const e = this.entries.get(name);
    if (!e) throw refuseSafetensors(this.path, `it has no tensor ${name}`);
    if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw refuseSafetensors(this.path, `tensor ${name} is ${e.dtype}, not a float`);
    const size = DTYPE_BYTES[e.dtype];
    if (start < 0 || (start + n) * size > e.end - e.begin) throw new RangeError(`safetensors: ${this.path}: elements [${start}, ${start + n}) outside tensor ${name}`);
    const raw = new Uint8Array(n * size);
    let done = 0;
    while (done < raw.length) {
      const { bytesRead } = await this.fh.read(raw, done, raw.length - done, this.dataStart + e.begin + start * size + done);
      if (bytesRead === 0) throw refuseSafetensors(this.path, `it ends inside tensor ${name}`);
      done += bytesRead;
    }
    if (e.dtype === 'F32') return new Float32Array(raw.buffer, 0, n);
    return widenHalf(e.dtype, new Uint16Array(raw.buffer, 0, n));
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
