import { type FileHandle, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import type { TokenArray } from '../internal/token-buffer.js';
import { FileHandleCache } from './file-handle-cache.js';
import { DATASET_SPLITS, type DatasetManifest, type DatasetSplit, MANIFEST_FILE, type ShardEntry, readManifest } from './manifest.js';
import { SHARD_HEADER_BYTES, checkShardHeader, shardSourceHash } from './shard-format.js';
import { sha256OfFile } from './split-writer.js';

export interface PreparedDatasetOptions {
  /** Shard files kept open at once (default DEFAULT_MAX_OPEN_SHARDS). */
  maxOpenFiles?: number;
}

/** Default PreparedDatasetOptions.maxOpenFiles. */
export const DEFAULT_MAX_OPEN_SHARDS = 8;

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const REPAIR_HINT = 'the dataset folder is damaged: run `trainer data prepare` again with --overwrite (or restore the file)';

/**
 * A dataset written by `trainer data prepare`, for training: each split is one token stream (the
 * shards concatenated in order), read by ranges with positional reads. Opening reads only the
 * manifest; a shard's header is checked (magic, version, dtype, count, tokenizer, dataset) and
 * its size compared with the manifest the first time it is read, and verify() hashes everything.
 * Reads may run concurrently.
 */
export class PreparedDataset {
  readonly manifest: DatasetManifest;
  readonly tokenizerHash: string;
  readonly vocabSize: number;
  readonly eotToken: number;
  readonly dtype: 'uint16' | 'uint32';
  /** Per split: starts[i] = first token of shard i in the split's stream; starts[n] = length. */
  private readonly starts: Record<DatasetSplit, Float64Array>;
  private readonly handles: FileHandleCache;
  private readonly checked = new Set<string>();
  private readonly shardByFile = new Map<string, ShardEntry>();

  private constructor(readonly dir: string, manifest: DatasetManifest, opts: PreparedDatasetOptions) {
    this.manifest = manifest;
    this.tokenizerHash = manifest.tokenizer.hash;
    this.vocabSize = manifest.tokenizer.vocabSize;
    this.eotToken = manifest.tokenizer.eotToken;
    this.dtype = manifest.dtype;
    const startsOf = (split: DatasetSplit) => {
      const shards = manifest.splits[split].shards;
      const starts = new Float64Array(shards.length + 1);
      shards.forEach((s, i) => (starts[i + 1] = starts[i] + s.tokens));
      return starts;
    };
    this.starts = { train: startsOf('train'), val: startsOf('val') };
    for (const split of DATASET_SPLITS) for (const s of manifest.splits[split].shards) this.shardByFile.set(s.file, s);
    this.handles = new FileHandleCache(opts.maxOpenFiles ?? DEFAULT_MAX_OPEN_SHARDS, (file) => this.openShard(file));
  }

  /** Opens `dir` (its manifest.json is read and checked; TRAINER_ERR_DATASET_FORMAT when missing or bad). */
  static async open(dir: string, opts: PreparedDatasetOptions = {}): Promise<PreparedDataset> {
    const root = resolve(dir);
    return new PreparedDataset(root, await readManifest(join(root, MANIFEST_FILE)), opts);
  }

  /** Tokens in a split (documents and their eot tokens). */
  length(split: DatasetSplit): number {
    return this.starts[split][this.starts[split].length - 1];
  }

  /** Tokens [start, start + count) of a split; the range may span any number of shards. */
  async read(split: DatasetSplit, start: number, count: number): Promise<TokenArray> {
    this.checkRange(split, start, count);
    const out = this.dtype === 'uint16' ? new Uint16Array(count) : new Uint32Array(count);
    const bytes = new Uint8Array(out.buffer);
    const bpt = out.BYTES_PER_ELEMENT;
    const starts = this.starts[split];
    const shards = this.manifest.splits[split].shards;
    let shard = upperBound(starts, start) - 1;
    let done = 0;
    while (done < count) {
      const within = start + done - starts[shard];
      const n = Math.min(count - done, shards[shard].tokens - within);
      await this.readShard(shards[shard].file, within, n, bytes.subarray(done * bpt, (done + n) * bpt));
      done += n;
      shard++;
    }
    if (!littleEndian) swapToHost(out);
    return out;
  }

  /** Hashes every shard and index file against the manifest (reads the whole dataset). */
  async verify(): Promise<void> {
    for (const split of DATASET_SPLITS) {
      for (const s of this.manifest.splits[split].shards) {
        for (const [name, sha256] of [[s.file, s.sha256], [s.indexFile, s.indexSha256]]) {
          const path = join(this.dir, name);
          const actual = await sha256OfFile(path).catch((err: unknown) => {
            throw notFound(path, err);
          });
          if (actual !== sha256) throw new TrainerError(DataErrorCode.TOKEN_FILE_FORMAT, `${path}: SHA-256 differs from the manifest (the file is damaged)`, { hint: REPAIR_HINT, details: { path } });
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.handles.close();
  }

  private checkRange(split: DatasetSplit, start: number, count: number): void {
    if (!DATASET_SPLITS.includes(split)) {
      throw new TrainerError(DataErrorCode.DATASET_RANGE, `unknown split ${JSON.stringify(split)}`, { hint: `use one of ${DATASET_SPLITS.join(', ')}` });
    }
    const length = this.length(split);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > length) {
      throw new TrainerError(DataErrorCode.DATASET_RANGE, `cannot read ${count} tokens at ${start} of the ${split} split: it holds ${length} tokens`, {
        hint: `read ranges within [0, ${length}) (whole numbers, count >= 0)`,
        details: { split, start, count, length },
      });
    }
  }

  private async readShard(file: string, tokenOffset: number, tokens: number, into: Uint8Array): Promise<void> {
    if (tokens === 0) return;
    const bpt = this.manifest.bytesPerToken;
    await this.handles.use(file, async (handle) => {
      let got = 0;
      while (got < into.byteLength) {
        const { bytesRead } = await handle.read(into, got, into.byteLength - got, SHARD_HEADER_BYTES + tokenOffset * bpt + got);
        if (bytesRead === 0) {
          const path = join(this.dir, file);
          throw new TrainerError(DataErrorCode.TOKEN_FILE_TRUNCATED, `shard ${path} ended early, at byte ${SHARD_HEADER_BYTES + tokenOffset * bpt + got}`, { hint: REPAIR_HINT, details: { path } });
        }
        got += bytesRead;
      }
    });
  }

  /** Opens a shard; the first time, checks its header and size against the manifest. */
  private async openShard(file: string): Promise<FileHandle> {
    const path = join(this.dir, file);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw notFound(path, err);
    }
    if (this.checked.has(file)) return handle;
    try {
      const entry = this.shardByFile.get(file)!;
      const header = Buffer.alloc(SHARD_HEADER_BYTES);
      const { bytesRead } = await handle.read(header, 0, SHARD_HEADER_BYTES, 0);
      checkShardHeader(header.subarray(0, bytesRead), path, {
        bytesPerToken: this.manifest.bytesPerToken,
        tokens: entry.tokens,
        vocabSize: this.vocabSize,
        tokenizerHash: this.tokenizerHash,
        sourceHash: shardSourceHash(this.manifest.datasetId, file),
      });
      const { size } = await handle.stat();
      if (size !== entry.bytes) {
        const code = size < entry.bytes ? DataErrorCode.TOKEN_FILE_TRUNCATED : DataErrorCode.TOKEN_FILE_FORMAT;
        throw new TrainerError(code, `shard ${path} has ${size} bytes, the manifest says ${entry.bytes}`, { hint: REPAIR_HINT, details: { path, size, expected: entry.bytes } });
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
    this.checked.add(file);
    return handle;
  }
}

function notFound(path: string, err: unknown): TrainerError {
  return new TrainerError(DataErrorCode.TOKEN_FILE_NOT_FOUND, `cannot open shard ${path}: ${(err as Error).message}`, { hint: REPAIR_HINT, cause: err, details: { path } });
}

/** The first index i with xs[i] > x (xs ascending). */
function upperBound(xs: Float64Array, x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function swapToHost(tokens: TokenArray): void {
  const view = new DataView(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  for (let i = 0; i < tokens.length; i++) tokens[i] = tokens.BYTES_PER_ELEMENT === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
}
