import { open, type FileHandle } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { widenHalf } from './half-float.js';
import { HfErrorCode, hfError } from './hf-errors.js';
import { headerLength, parseSafetensorsHeaderWith, refuseSafetensors } from './safetensors.js';

/**
 * One safetensors file of a Hugging Face model, read by element runs of its tensors. Unlike
 * SafetensorsRangeReader (the trainer's own files), the header may hold any dtype safetensors
 * defines (F64, I64, BOOL, F8_*: a buffer, a quantization scale the model here never reads);
 * those are checked for layout like the rest and refused only when read (TRAINER_ERR_HF_DTYPE).
 * Floats are returned as fp32: F32 as stored, BF16 and F16 widened exactly.
 */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** The dtypes a tensor the model reads may have. */
export const HF_FLOAT_DTYPES = ['F32', 'BF16', 'F16'] as const;
export type HfFloatDtype = (typeof HF_FLOAT_DTYPES)[number];

export interface HfShardEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offsets in the data section. */
  begin: number;
  end: number;
}

/** The validated entries of a header (see parseSafetensorsHeaderWith), by name. */
function parseHeader(json: Uint8Array, dataLen: number, path: string): Map<string, HfShardEntry> {
  return new Map(parseSafetensorsHeaderWith(json, dataLen, path, DTYPE_BYTES).entries.map((e) => [e.name, e]));
}

/** Element runs read at once: enough in flight to keep a disk busy, few enough to bound memory. */
const READS_IN_FLIGHT = 64;

export class HfShardFile {
  private constructor(readonly path: string, private readonly fh: FileHandle, private readonly dataStart: number, readonly entries: ReadonlyMap<string, HfShardEntry>) {}

  /** Opens a file and validates its header; `missing` is the error for a file that is not there. */
  static async open(path: string, missing: () => TrainerError): Promise<HfShardFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') throw missing();
      throw new TrainerError('TRAINER_ERR_FILE_UNREADABLE', `cannot read ${path}`, { cause: err, hint: 'check the path and its permissions' });
    }
    try {
      const size = (await fh.stat()).size;
      const prefix = new Uint8Array(8);
      await readFully(fh, prefix, 0, path);
      const n = headerLength(prefix, size, path);
      const json = new Uint8Array(n);
      await readFully(fh, json, 8, path);
      return new HfShardFile(path, fh, 8 + n, parseHeader(json, size - 8 - n, path));
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** The entry of a tensor that must be a float (TRAINER_ERR_HF_DTYPE otherwise). */
  floatEntry(name: string): HfShardEntry & { dtype: HfFloatDtype } {
    const e = this.entries.get(name);
    if (!e) throw new Error(`internal: ${this.path} has no tensor ${name}`);
    if (!(HF_FLOAT_DTYPES as readonly string[]).includes(e.dtype)) {
      throw hfError(HfErrorCode.DTYPE, `${this.path}: ${name} is ${e.dtype}; the trainer reads F32, BF16 and F16 tensors`, { file: this.path, details: { tensor: name, dtype: e.dtype } });
    }
    return e as HfShardEntry & { dtype: HfFloatDtype };
  }

  /**
   * Runs [offset, offset + n) of tensor `name`'s row-major elements, concatenated in the order
   * given, as fp32. Only those bytes are read.
   */
  async readRuns(name: string, runs: readonly (readonly [offset: number, n: number])[]): Promise<Float32Array> {
    const e = this.floatEntry(name);
    const size = DTYPE_BYTES[e.dtype];
    const total = runs.reduce((s, [, n]) => s + n, 0);
    const raw = new Uint8Array(total * size);
    const reads: (() => Promise<void>)[] = [];
    let at = 0;
    for (const [offset, n] of runs) {
      if (offset < 0 || n < 0 || (offset + n) * size > e.end - e.begin) throw new RangeError(`safetensors: ${this.path}: elements [${offset}, ${offset + n}) outside tensor ${name}`);
      const dst = raw.subarray(at * size, (at + n) * size);
      const position = this.dataStart + e.begin + offset * size;
      reads.push(() => readFully(this.fh, dst, position, this.path));
      at += n;
    }
    for (let i = 0; i < reads.length; i += READS_IN_FLIGHT) await Promise.all(reads.slice(i, i + READS_IN_FLIGHT).map((r) => r()));
    if (e.dtype === 'F32') return new Float32Array(raw.buffer, 0, total);
    return widenHalf(e.dtype, new Uint16Array(raw.buffer, 0, total));
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** One read call's most bytes (Node refuses reads of 2 GiB and more; a 70B model's embedding is larger). */
const MAX_READ_BYTES = 1 << 30;

async function readFully(fh: FileHandle, dst: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    const { bytesRead } = await fh.read(dst, done, Math.min(dst.length - done, MAX_READ_BYTES), position + done);
    if (bytesRead === 0) throw refuseSafetensors(path, `it ends at byte ${position + done}, inside its data`);
    done += bytesRead;
  }
}
