import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, stat } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import type { TokenArray } from '../internal/token-buffer.js';
import type { DatasetSplit, ShardEntry } from './manifest.js';
import { INDEX_FILE_HEADER_BYTES, SHARD_HEADER_BYTES, encodeIndexHeader, encodeShardHeader, indexFileName, shardFileName, shardSourceHash } from './shard-format.js';

/** The shard being filled, as the progress file records it. */
export interface OpenShardState {
  index: number;
  tokens: number;
  documents: number;
}

export interface SplitWriterOptions {
  dir: string;
  split: DatasetSplit;
  /** A shard is closed after the document that takes its file to this size or more. */
  shardBytes: number;
  bytesPerToken: 2 | 4;
  vocabSize: number;
  tokenizerHash: string;
  datasetId: string;
}

/** Suffix of a shard's files while it is being written (`train-00003.tok.partial`). */
export const PARTIAL_SUFFIX = '.partial';
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface OpenShard extends OpenShardState {
  tok: FileHandle | undefined;
  idx: FileHandle | undefined;
  /** SHA-256 of the payload written so far. */
  payloadHash: Hash;
  /** Token bytes not yet written: views into the tokenizer threads' replies, coalesced. */
  pending: Uint8Array[];
  pendingStarts: number[];
  /** Tokens and documents already in the files. */
  writtenTokens: number;
  writtenDocuments: number;
}

/**
 * Writes one split as shards: `<split>-00000.tok` + `.idx`, ... Documents are appended in order
 * (their tokens, eot included) into `<name>.partial` files; a shard is completed (header written,
 * fsynced, hashed) after the document that takes it to `shardBytes`, and renamed to its final name
 * by commit(), which is called once the progress file lists it. So a crash leaves either a shard
 * listed in the progress file (under either name, whole) or the last checkpoint's prefix of one.
 */
export class SplitWriter {
  readonly completed: ShardEntry[];
  private open: OpenShard | undefined;
  private nextIndex: number;
  private toCommit: ShardEntry[] = [];

  private constructor(private readonly opts: SplitWriterOptions, completed: ShardEntry[], nextIndex: number) {
    this.completed = completed;
    this.nextIndex = nextIndex;
  }

  /** A writer starting from nothing, or from a progress file's state (the open shard's files cut back to it). */
  static async create(opts: SplitWriterOptions, resume?: { completed: ShardEntry[]; open: OpenShardState }): Promise<SplitWriter> {
    const writer = new SplitWriter(opts, [...(resume?.completed ?? [])], resume?.open.index ?? 0);
    if (resume && resume.open.tokens > 0) await writer.reopen(resume.open);
    return writer;
  }

  get openState(): OpenShardState {
    return { index: this.nextIndex, tokens: this.open?.tokens ?? 0, documents: this.open?.documents ?? 0 };
  }

  /** Appends one document. True when the shard is full: call completeShard() before the next append. */
  append(tokens: TokenArray): boolean {
    const shard = (this.open ??= this.newShard());
    shard.pendingStarts.push(shard.tokens);
    shard.tokens += tokens.length;
    shard.documents++;
    const bytes = littleEndian ? new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength) : toLittleEndian(tokens);
    const last = shard.pending[shard.pending.length - 1];
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.byteLength === bytes.byteOffset) {
      shard.pending[shard.pending.length - 1] = new Uint8Array(bytes.buffer, last.byteOffset, last.byteLength + bytes.byteLength);
    } else {
      shard.pending.push(bytes);
    }
    return SHARD_HEADER_BYTES + shard.tokens * this.opts.bytesPerToken >= this.opts.shardBytes;
  }

  /** Writes what append() holds in memory to the .partial files. */
  async flush(): Promise<void> {
    const shard = this.open;
    if (!shard || shard.pending.length === 0) return;
    shard.tok ??= await this.openFile(this.partialPath(shardFileName), 'w');
    shard.idx ??= await this.openFile(this.partialPath(indexFileName), 'w');
    await writeAll(shard.tok, shard.pending, SHARD_HEADER_BYTES + shard.writtenTokens * this.opts.bytesPerToken);
    for (const part of shard.pending) shard.payloadHash.update(part);
    const starts = Buffer.allocUnsafe(8 * shard.pendingStarts.length);
    shard.pendingStarts.forEach((s, i) => {
      starts.writeUInt32LE(s % 2 ** 32, 8 * i);
      starts.writeUInt32LE(Math.floor(s / 2 ** 32), 8 * i + 4);
    });
    await writeAll(shard.idx, [starts], INDEX_FILE_HEADER_BYTES + 8 * shard.writtenDocuments);
    shard.writtenTokens = shard.tokens;
    shard.writtenDocuments = shard.documents;
    shard.pending = [];
    shard.pendingStarts = [];
  }

  /** Flushes and fsyncs the open shard's files: the state a progress file may then record. */
  async sync(): Promise<OpenShardState> {
    await this.flush();
    await this.open?.tok?.sync();
    await this.open?.idx?.sync();
    return this.openState;
  }

  /**
   * Completes the open shard: writes the headers, fsyncs, hashes the files. It stays under its
   * .partial name until commit(). Returns undefined when no shard is open.
   */
  async completeShard(): Promise<ShardEntry | undefined> {
    const shard = this.open;
    if (!shard) return undefined;
    await this.flush();
    const file = shardFileName(this.opts.split, shard.index);
    const indexFile = indexFileName(this.opts.split, shard.index);
    const header = encodeShardHeader({
      bytesPerToken: this.opts.bytesPerToken,
      tokens: shard.tokens,
      vocabSize: this.opts.vocabSize,
      tokenizerHash: this.opts.tokenizerHash,
      sourceHash: shardSourceHash(this.opts.datasetId, file),
      payloadSha256: shard.payloadHash.digest('hex'),
    });
    await writeAll(shard.tok!, [header], 0);
    await writeAll(shard.idx!, [encodeIndexHeader(shard.documents, shard.tokens)], 0);
    for (const handle of [shard.tok!, shard.idx!]) {
      await handle.sync();
      await handle.close();
    }
    const tokPath = join(this.opts.dir, file + PARTIAL_SUFFIX);
    const idxPath = join(this.opts.dir, indexFile + PARTIAL_SUFFIX);
    const entry: ShardEntry = {
      file,
      tokens: shard.tokens,
      documents: shard.documents,
      bytes: SHARD_HEADER_BYTES + shard.tokens * this.opts.bytesPerToken,
      sha256: await sha256OfFile(tokPath),
      indexFile,
      indexBytes: INDEX_FILE_HEADER_BYTES + 8 * shard.documents,
      indexSha256: await sha256OfFile(idxPath),
    };
    this.completed.push(entry);
    this.toCommit.push(entry);
    this.open = undefined;
    this.nextIndex++;
    return entry;
  }

  /** Renames completed shards to their final names (after the progress file lists them). */
  async commit(): Promise<void> {
    for (const entry of this.toCommit.splice(0)) {
      for (const name of [entry.file, entry.indexFile]) await rename(join(this.opts.dir, name + PARTIAL_SUFFIX), join(this.opts.dir, name));
    }
  }

  /** Closes the open shard's files without completing it (an interrupted run). */
  async close(): Promise<void> {
    await this.open?.tok?.close().catch(() => undefined);
    await this.open?.idx?.close().catch(() => undefined);
    if (this.open) {
      this.open.tok = undefined;
      this.open.idx = undefined;
    }
  }

  private newShard(): OpenShard {
    return { index: this.nextIndex, tokens: 0, documents: 0, tok: undefined, idx: undefined, payloadHash: createHash('sha256'), pending: [], pendingStarts: [], writtenTokens: 0, writtenDocuments: 0 };
  }

  private partialPath(name: (split: DatasetSplit, index: number) => string): string {
    return join(this.opts.dir, name(this.opts.split, this.nextIndex) + PARTIAL_SUFFIX);
  }

  private async openFile(path: string, flags: 'w' | 'r+'): Promise<FileHandle> {
    try {
      return await open(path, flags);
    } catch (err) {
      throw new TrainerError(DataErrorCode.DATA_WRITE, `cannot open ${path}: ${(err as Error).message}`, { hint: 'check that the output folder is writable', cause: err, details: { path } });
    }
  }

  /** Resume: cut the open shard's .partial files back to what the progress file recorded, re-hash the payload. */
  private async reopen(state: OpenShardState): Promise<void> {
    const shard = this.newShard();
    const tokPath = this.partialPath(shardFileName);
    const idxPath = this.partialPath(indexFileName);
    const tokBytes = SHARD_HEADER_BYTES + state.tokens * this.opts.bytesPerToken;
    const idxBytes = INDEX_FILE_HEADER_BYTES + 8 * state.documents;
    for (const [path, need] of [[tokPath, tokBytes], [idxPath, idxBytes]] as const) {
      const size = await stat(path).then((s) => s.size, () => -1);
      if (size < need) {
        throw new TrainerError(DataErrorCode.DATASET_FORMAT, `cannot resume: ${path} has ${size < 0 ? 'gone' : `${size} bytes, fewer than the ${need} the progress file recorded`}`, {
          hint: 'the output folder was changed by something else: start again with --overwrite',
          details: { path, size, need },
        });
      }
    }
    shard.tok = await this.openFile(tokPath, 'r+');
    shard.idx = await this.openFile(idxPath, 'r+');
    await shard.tok.truncate(tokBytes);
    await shard.idx.truncate(idxBytes);
    for await (const chunk of createReadStream(tokPath, { start: SHARD_HEADER_BYTES, end: tokBytes - 1, highWaterMark: 1 << 20 })) shard.payloadHash.update(chunk as Buffer);
    Object.assign(shard, { tokens: state.tokens, documents: state.documents, writtenTokens: state.tokens, writtenDocuments: state.documents });
    this.open = shard;
  }
}

/** Writes `parts` one after the other from `position` (vectored, 512 at a time; short writes finished). */
async function writeAll(handle: FileHandle, parts: Uint8Array[], position: number): Promise<void> {
  let pos = position;
  for (let i = 0; i < parts.length; i += 512) {
    const group = parts.slice(i, i + 512);
    let { bytesWritten } = await handle.writev(group, pos);
    for (const part of group) {
      let offset = Math.min(bytesWritten, part.byteLength);
      bytesWritten -= offset;
      while (offset < part.byteLength) offset += (await handle.write(part, offset, part.byteLength - offset, pos + offset)).bytesWritten;
      pos += part.byteLength;
    }
  }
}

/** SHA-256 (hex) of a whole file, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function toLittleEndian(tokens: TokenArray): Uint8Array {
  const out = Buffer.alloc(tokens.byteLength);
  tokens.forEach((t, i) => (tokens.BYTES_PER_ELEMENT === 2 ? out.writeUInt16LE(t, 2 * i) : out.writeUInt32LE(t, 4 * i)));
  return out;
}
