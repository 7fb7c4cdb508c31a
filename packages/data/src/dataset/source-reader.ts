import { createReadStream, type ReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { TrainerError } from '@trainer/errors';
import { loadBuiltinCorpus } from '../builtin-corpora.js';
import { DataErrorCode } from '../codes.js';
import { CORPUS_MAX_FILE_BYTES } from '../corpus-files.js';
import { zstdDecompressor } from './zstd-stream.js';
import type { DatasetSource } from './sources.js';

/**
 * Where reading stands: the next unit is in `source`, `offset` bytes into its decompressed
 * stream, and `line` units of it are behind. A unit is a .jsonl line, a whole .txt file, or a
 * document of a built-in corpus (there, offset = line = the document's index).
 */
export interface SourcePosition {
  source: number;
  offset: number;
  line: number;
}

/**
 * Consecutive units of one source, packed for a tokenizer thread: unit i is the UTF-8 bytes
 * bytes[ends[i-1], ends[i]) (a built-in corpus sends `texts` instead). A unit may turn out to be no
 * document (a blank .jsonl line, an empty text): the thread decides.
 */
export interface UnitBatch {
  source: number;
  /** `line` of the first unit: .jsonl line numbers (0-based) for error messages. */
  firstLine: number;
  jsonl: boolean;
  bytes: Uint8Array;
  ends: Float64Array;
  texts: string[] | undefined;
  /** Position offset after each unit (not sent to the thread). */
  offsets: Float64Array;
  /** Number of units. `ends` also gives each unit's UTF-8 size for `texts`. */
  count: number;
}

export interface SourceReaderOptions {
  /** Close a batch once it holds this many bytes of text. */
  batchBytes: number;
  /** Refuse a unit (a .txt file, a .jsonl line) bigger than this: it is one JS string. */
  maxUnitBytes?: number;
}

/** Reads one source, streaming, from a position: never more than a batch (and one unit) in memory. */
export class SourceReader {
  private raw: ReadStream | undefined;

  constructor(private readonly source: DatasetSource, private readonly index: number, private readonly opts: SourceReaderOptions) {}

  private rawStart = 0;
  private builtinBytes = 0;

  /** Bytes read from disk so far (compressed bytes for .gz/.zst), counted from the file's start; text bytes for a built-in corpus. */
  get diskBytesRead(): number {
    return this.raw ? this.rawStart + this.raw.bytesRead : this.builtinBytes;
  }

  async *batches(from: { offset: number; line: number }): AsyncGenerator<UnitBatch> {
    if (this.source.builtin) {
      yield* this.builtinBatches(from.line);
      return;
    }
    const path = this.source.entry.path;
    const compressed = this.source.compression !== 'none';
    this.rawStart = compressed ? 0 : from.offset;
    this.raw = createReadStream(path, { start: this.rawStart, highWaterMark: 1 << 20 });
    const stream: Readable = !compressed ? this.raw : this.raw.pipe(this.source.compression === 'gzip' ? createGunzip() : zstdDecompressor());
    if (stream !== this.raw) this.raw.on('error', (err) => stream.destroy(err));
    const skip = compressed ? from.offset : 0;
    const chunks = this.decompressed(stream, skip);
    try {
      if (this.source.format === 'txt') yield* this.wholeFile(chunks, from);
      else yield* this.lines(chunks, from);
    } finally {
      stream.destroy();
      this.raw.destroy();
    }
  }

  /** The decompressed stream as Buffers, the first `skip` bytes dropped; stream errors become TrainerErrors. */
  private async *decompressed(stream: Readable, skip: number): AsyncGenerator<Buffer> {
    let toSkip = skip;
    try {
      for await (const chunk of stream) {
        let buf = chunk as Buffer;
        if (toSkip > 0) {
          const n = Math.min(toSkip, buf.length);
          toSkip -= n;
          buf = buf.subarray(n);
          if (buf.length === 0) continue;
        }
        yield buf;
      }
    } catch (err) {
      throw this.readError(err);
    }
    if (toSkip > 0) throw this.changedError(`it ends before offset ${skip}`);
  }

  private readError(err: unknown): TrainerError {
    if (err instanceof TrainerError) return err;
    const path = this.source.entry.path;
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') return new TrainerError(DataErrorCode.CORPUS_NOT_FOUND, `data source ${path} disappeared while reading`, { hint: 'keep the sources in place until `trainer data prepare` ends', cause: err, details: { path } });
    if (errno !== undefined && errno.startsWith('E') && !errno.startsWith('ERR_')) {
      return new TrainerError(DataErrorCode.CORPUS_UNREADABLE, `cannot read data source ${path}: ${(err as Error).message}`, { hint: 'check the file permissions and the disk', cause: err, details: { path, errno } });
    }
    return new TrainerError(DataErrorCode.CORPUS_FORMAT, `data source ${path} is not valid ${this.source.compression} data: ${(err as Error).message}`, {
      hint: 'check the file (e.g. `gzip -t` or `zstd -t`); a file cut short or misnamed cannot be read',
      cause: err,
      details: { path },
    });
  }

  private changedError(what: string): TrainerError {
    const path = this.source.entry.path;
    return new TrainerError(DataErrorCode.DATASET_MISMATCH, `data source ${path} changed since the interrupted run: ${what}`, {
      hint: 'restore the sources, or start again with --overwrite or a new --out',
      details: { path },
    });
  }

  private tooLarge(bytes: number, line: number): TrainerError {
    const path = this.source.entry.path;
    const limit = this.opts.maxUnitBytes ?? CORPUS_MAX_FILE_BYTES;
    const where = this.source.format === 'jsonl' ? `${path}:${line + 1}` : path;
    return new TrainerError(DataErrorCode.CORPUS_TOO_LARGE, `document ${where} has more than ${limit} bytes (${bytes} so far)`, {
      hint: 'split it: one document is tokenized as one string (use .jsonl lines or several .txt files)',
      details: { path, line: line + 1, limit },
    });
  }

  /** A .txt file: one unit holding the whole (decompressed) text. */
  private async *wholeFile(chunks: AsyncGenerator<Buffer>, from: { offset: number; line: number }): AsyncGenerator<UnitBatch> {
    if (from.line > 0) return; // already done
    const limit = this.opts.maxUnitBytes ?? CORPUS_MAX_FILE_BYTES;
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of chunks) {
      size += chunk.length;
      if (size > limit) throw this.tooLarge(size, 0);
      parts.push(chunk);
    }
    const bytes = new Uint8Array(size); // its own ArrayBuffer (never Buffer's shared pool): it is transferred to a thread
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    yield { source: this.index, firstLine: 0, jsonl: false, bytes, ends: Float64Array.of(size), texts: undefined, offsets: Float64Array.of(size), count: 1 };
  }

  /** A .jsonl file: one unit per line ('\n'; a last line without one counts). */
  private async *lines(chunks: AsyncGenerator<Buffer>, from: { offset: number; line: number }): AsyncGenerator<UnitBatch> {
    const limit = this.opts.maxUnitBytes ?? CORPUS_MAX_FILE_BYTES;
    const batch = new BatchBuilder(this.index, from.line);
    let offset = from.offset;
    let line = from.line;
    let carry: Buffer[] = [];
    let carryBytes = 0;
    for await (const chunk of chunks) {
      let pos = 0;
      for (;;) {
        const nl = chunk.indexOf(10, pos);
        if (nl < 0) {
          if (pos < chunk.length) {
            carry.push(chunk.subarray(pos));
            carryBytes += chunk.length - pos;
            if (carryBytes > limit) throw this.tooLarge(carryBytes, line);
          }
          break;
        }
        if (carryBytes + nl - pos > limit) throw this.tooLarge(carryBytes + nl - pos, line);
        offset += carryBytes + nl - pos + 1;
        batch.add(carry, chunk.subarray(pos, nl), offset);
        carry = [];
        carryBytes = 0;
        line++;
        pos = nl + 1;
        if (batch.bytes >= this.opts.batchBytes) yield batch.take();
      }
    }
    if (carryBytes > 0) batch.add(carry, undefined, offset + carryBytes);
    if (batch.count > 0) yield batch.take();
  }

  private *builtinBatches(fromLine: number): Generator<UnitBatch> {
    const documents = loadBuiltinCorpus(this.source.builtin!).documents;
    let start = fromLine;
    while (start < documents.length) {
      let end = start;
      const ends: number[] = [];
      let bytes = 0;
      while (end < documents.length && bytes < this.opts.batchBytes) ends.push((bytes += Buffer.byteLength(documents[end++])));
      const offsets = new Float64Array(end - start).map((_, i) => start + i + 1);
      this.builtinBytes += bytes;
      yield { source: this.index, firstLine: start, jsonl: false, bytes: new Uint8Array(0), ends: Float64Array.from(ends), texts: documents.slice(start, end), offsets, count: end - start };
      start = end;
    }
  }
}

/** Packs lines into one growing buffer. */
class BatchBuilder {
  private buf = Buffer.allocUnsafe(1 << 20);
  bytes = 0;
  count = 0;
  private ends: number[] = [];
  private offsets: number[] = [];

  constructor(private readonly source: number, private firstLine: number) {}

  add(head: Buffer[], tail: Buffer | undefined, offsetAfter: number): void {
    const size = head.reduce((n, b) => n + b.length, 0) + (tail?.length ?? 0);
    if (this.bytes + size > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.bytes + size));
      this.buf.copy(grown, 0, 0, this.bytes);
      this.buf = grown;
    }
    for (const part of head) this.bytes += part.copy(this.buf, this.bytes);
    if (tail) this.bytes += tail.copy(this.buf, this.bytes);
    this.ends.push(this.bytes);
    this.offsets.push(offsetAfter);
    this.count++;
  }

  take(): UnitBatch {
    const batch: UnitBatch = {
      source: this.source,
      firstLine: this.firstLine,
      jsonl: true,
      bytes: new Uint8Array(this.buf.subarray(0, this.bytes)),
      ends: Float64Array.from(this.ends),
      texts: undefined,
      offsets: Float64Array.from(this.offsets),
      count: this.count,
    };
    this.firstLine += this.count;
    this.bytes = 0;
    this.count = 0;
    this.ends = [];
    this.offsets = [];
    return batch;
  }
}
